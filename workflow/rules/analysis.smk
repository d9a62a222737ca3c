# Tidy tables from every experiment, then one figure each.


# The scripts are inputs too: changing how tables or figures are made remakes them.


rule aggregate:
    input:
        metrics=expand(R + "/runs/{id}/metrics.csv", id=EXPERIMENTS),
        status=expand(R + "/runs/{id}/status.json", id=EXPERIMENTS),
        code="workflow/scripts/aggregate.py",
    output:
        TABLES,
    params:
        experiments=EXPERIMENTS,
    script:
        "../scripts/aggregate.py"


rule figure:
    input:
        tables=TABLES,
        code="workflow/scripts/plot.py",
    output:
        png=report(R + "/figures/{name}.png", caption="../report/figure.rst",
                   category="Figures"),
        pdf=R + "/figures/{name}.pdf",
    script:
        "../scripts/plot.py"
