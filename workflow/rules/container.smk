# The Apptainer image every job can run in (snakemake --sdm apptainer): Debian of this
# machine's release, with tansiv's runtime and build dependencies (images/tansiv.def).
def _codename():
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    return "bookworm"


rule container:
    """The Apptainer image (cached in ~/.cache/tansiv/containers; the output links to it)."""
    input:
        "images/tansiv.def",
    output:
        SIF,
    log:
        R + "/logs/build/container.log",
    params:
        codename=_codename(),
    shell:
        "images/build-container.sh {input} {output} {params.codename} > {log} 2>&1"
