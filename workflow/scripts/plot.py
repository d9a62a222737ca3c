# One figure of the workload registry (snakemake.wildcards.name), from the tidy tables, as
# PNG and PDF (tansiv/experiments/figures.py).
from pathlib import Path

from tansiv.experiments import figures, workloads

figures.draw(workloads.figures(snakemake.config)[snakemake.wildcards.name],
             figures.read_tables(snakemake.input.tables), snakemake.output.png,
             snakemake.output.pdf)
Path(snakemake.log[0]).write_text(f"drew {snakemake.output.png} and {snakemake.output.pdf}\n")
