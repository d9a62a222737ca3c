# Tidy tables from every experiment, then one figure each (the workload registry says which
# tables and figures there are, and how each figure is drawn and captioned). The scripts are
# inputs too: changing how tables or figures are made remakes them.
WORKLOAD_SOURCES = sorted(str(p) for p in Path("tansiv/experiments/workloads").glob("*.py"))


rule aggregate:
    input:
        metrics=expand(R + "/runs/{id}/metrics.csv", id=EXPERIMENTS),
        status=expand(R + "/runs/{id}/status.json", id=EXPERIMENTS),
        code=["workflow/scripts/aggregate.py", *WORKLOAD_SOURCES],
    output:
        TABLES,
    log:
        R + "/logs/aggregate.log",
    params:
        experiments=EXPERIMENTS,
    script:
        "../scripts/aggregate.py"


rule figure:
    input:
        tables=TABLES,
        code=["workflow/scripts/plot.py", "tansiv/experiments/figures.py", *WORKLOAD_SOURCES],
    output:
        png=report(R + "/figures/{name}.png", caption="../report/figure.rst",
                   category="Figures"),
        pdf=R + "/figures/{name}.pdf",
        drawn=R + "/figures/{name}.json",  # what it shows: data points, or placeholders
    log:
        R + "/logs/figures/{name}.log",
    params:
        caption=lambda wildcards: FIGURE[wildcards.name].caption,
    script:
        "../scripts/plot.py"
