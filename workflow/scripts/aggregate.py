# Tidy tables from every experiment's metrics.csv and status.json (results/tables/:
# tansiv/experiments/tables.py says which).
from pathlib import Path

from tansiv.experiments import tables

exps, metrics = tables.write(snakemake.params.experiments, snakemake.input.status,
                             snakemake.input.metrics,
                             {Path(p).stem: p for p in snakemake.output}, snakemake.config)
Path(snakemake.log[0]).write_text(
    f"{len(exps)} experiments ({(exps.status == 'ok').sum()} ok), {len(metrics)} measurements\n")
