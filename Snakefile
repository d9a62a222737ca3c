# tansiv's pipeline: build the C core, QEMU with tantap and the guest image, run every
# experiment of the sweep (config/config.yaml), aggregate tidy tables, draw the figures.
#   snakemake --cores all                       the default sweep
#   snakemake --cores all --configfile config/paper.yaml
#   snakemake --report results/report.html      the claims checked, the figures with captions
#   snakemake --cores all rerun_check           chosen experiments run twice and compared
#   snakemake --cores all --sdm apptainer       every job inside images/container's image
#   snakemake --profile profiles/slurm          on a SLURM cluster
from snakemake.utils import min_version

min_version("9.0")


# The default sweep, unless --configfile gave another (which would otherwise be merged into
# it); --config KEY=VALUE overrides either. The configuration is checked in common.smk.
if "sweeps" not in config:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/container.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/claims.smk"


# The report's first page: the claims and their verdicts, once the pipeline checked them.
if Path(R + "/claims.rst").exists():

    report: str(Path(R + "/claims.rst").resolve())


rule all:
    input:
        TABLES,
        FIGURES,
        R + "/claims.md",
    default_target: True
