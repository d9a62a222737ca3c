# One figure of the workload registry (snakemake.wildcards.name), from the tidy tables, as
# PNG and PDF (tansiv/experiments/figures.py), and what it shows (points, placeholders) as
# JSON beside them.
import json
from pathlib import Path

from tansiv.experiments import figures, workloads

drawn = figures.draw(workloads.figures(snakemake.config)[snakemake.wildcards.name],
                     figures.read_tables(snakemake.input.tables), snakemake.output.png,
                     snakemake.output.pdf)
Path(snakemake.output.drawn).write_text(json.dumps(drawn.as_dict()) + "\n")
Path(snakemake.log[0]).write_text(f"drew {snakemake.output.png} and {snakemake.output.pdf}: "
                                  f"{drawn.points} points, {drawn.placeholders} placeholders\n")
