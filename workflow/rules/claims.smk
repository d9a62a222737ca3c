# What the figures claim, checked against the tables (tansiv/experiments/claims.py):
# results/claims.md and .json, and claims.rst, the report's first page (Snakefile). The rerun
# check, `snakemake --cores all rerun_check`, runs the experiments rerun_check: names a second
# time (results/rerun/<id>/), compares what they gave byte for byte, and adds its claim.
RERUN_TABLE = R + "/tables/rerun.csv"


def claims_inputs(wildcards):
    """The tables, and the rerun check's when it was asked for or has run."""
    asked = "rerun_check" in workflow.dag_settings.targets
    return {"tables": TABLES,
            "rerun": [RERUN_TABLE] if RERUN and (asked or Path(RERUN_TABLE).exists()) else []}


rule claims:
    input:
        unpack(claims_inputs),
        code=["workflow/scripts/claims.py", "tansiv/experiments/claims.py", *WORKLOAD_SOURCES],
    output:
        md=R + "/claims.md",
        json=R + "/claims.json",
        rst=R + "/claims.rst",
    log:
        R + "/logs/claims.log",
    script:
        "../scripts/claims.py"


use rule experiment as rerun with:
    output:
        metrics=R + "/rerun/{id}/metrics.csv",
        status=R + "/rerun/{id}/status.json",
    log:
        R + "/logs/rerun/{id}.log",


rule rerun_compare:
    input:
        first=R + "/runs/{id}/status.json",
        second=R + "/rerun/{id}/status.json",
    output:
        R + "/rerun/{id}/identical.csv",
    script:
        "../scripts/compare_reruns.py"


rule rerun_table:
    input:
        expand(R + "/rerun/{id}/identical.csv", id=RERUN),
    output:
        RERUN_TABLE,
    run:
        import pandas as pd

        frames = [pd.read_csv(p) for p in input]
        (pd.concat(frames) if frames else pd.DataFrame()).to_csv(output[0], index=False)


rule rerun_check:
    input:
        RERUN_TABLE,
        R + "/claims.md",
