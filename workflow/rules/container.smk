# The Apptainer image every job can run in (snakemake --sdm apptainer): Debian of this
# machine's release, with tansiv's runtime and build dependencies (images/container/).


rule container:
    """The Apptainer image (cached in ~/.cache/tansiv/containers; the output links to it)."""
    input:
        "images/container/tansiv.def",
    output:
        SIF,
    log:
        R + "/logs/build/container.log",
    params:
        codename=debian.codename(),
    shell:
        "images/container/build-container.sh {input:q} {output:q} {params.codename:q} > {log:q} 2>&1"
