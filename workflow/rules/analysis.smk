# Tidy tables from every experiment, then one figure each.


rule aggregate:
    input:
        metrics=expand(R + "/runs/{id}/metrics.csv", id=EXPERIMENTS),
        status=expand(R + "/runs/{id}/status.json", id=EXPERIMENTS),
    output:
        TABLES,
    params:
        experiments=EXPERIMENTS,
    script:
        "../scripts/aggregate.py"


rule figure:
    input:
        tables=TABLES,
    output:
        png=report(R + "/figures/{name}.png", caption="../report/figure.rst",
                   category="Figures"),
        pdf=R + "/figures/{name}.pdf",
    script:
        "../scripts/plot.py"
