# Every figure's claims checked against the tidy tables (tansiv/experiments/claims.py).
from pathlib import Path

from tansiv.experiments import claims, figures, workloads

tables = figures.read_tables([*snakemake.input.tables, *snakemake.input.rerun])
rows = claims.evaluate(workloads.figures(snakemake.config), claims.GENERAL, tables)
claims.write(rows, snakemake.output.md, snakemake.output.json, snakemake.output.rst)
n = claims.counts(rows)
Path(snakemake.log[0]).write_text(", ".join(f"{k}: {v}" for k, v in n.items()) + "\n")
