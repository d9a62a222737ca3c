# tansiv's pipeline: build the C core, QEMU with tantap and the guest image, run every
# experiment of the sweep (config/config.yaml), aggregate tidy tables, draw the figures.
#   snakemake --cores all                       the default sweep
#   snakemake --cores all --configfile config/paper.yaml
#   snakemake --report results/report.html      the figures, with captions
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


rule all:
    input:
        TABLES,
        FIGURES,
    default_target: True
