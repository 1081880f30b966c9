# Rules of the report stage (see README). Targets are planned in src/edgeopt/plan/report.py.
# collect_results gathers every other stage's targets (plan.report_inputs) into tables; plot_figure draws
# each figure of edgeopt.report.catalog planned for this run (only when its data are part of the run);
# make_report writes the HTML page. Outputs wrapped in report() also make up `snakemake --report report.html`.
from edgeopt.report.catalog import FIGURES


report: "../report/workflow.rst"


rule collect_results:
    input:
        plan.report_inputs(config),
    output:
        results=report(
            plan.report_table_path("results"),
            caption="../report/results_table.rst",
            category="Tables",
        ),
        parquet=plan.report_table_path("results", "parquet"),
        sensitivity=plan.report_table_path("sensitivity"),
        qat_sweep=plan.report_table_path("qat_sweep"),
        retrain=plan.report_table_path("retrain"),
    log:
        layout.log("collect_results"),
    benchmark:
        layout.benchmark("collect_results")
    conda:
        "../../envs/edgeopt.yaml"
    params:
        out=lambda w, output: Path(output.results).parent,
    shell:
        "python -m edgeopt report-table --out {params.out:q}"
        " --inputs {input:q} > {log:q} 2>&1"


rule plot_figure:
    input:
        rules.collect_results.output,
    output:
        report(
            layout.REPORT_FIGURE,
            caption="../report/figure.rst",
            category=lambda w: FIGURES[w.figure].category,
        ),
    log:
        layout.log("plot_{figure}"),
    benchmark:
        layout.benchmark("plot_{figure}")
    wildcard_constraints:
        figure="|".join(plan.report_figures(config)) or "(?!)",
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.report_plot_json(config),
        tables=lambda w, input: Path(input[0]).parent,
        caption=lambda w: FIGURES[w.figure].caption,  # shown by `snakemake --report` (figure.rst)
    shell:
        "python -m edgeopt report-figure --figure {wildcards.figure} --tables {params.tables:q}"
        " --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule make_report:
    input:
        tables=rules.collect_results.output,
        figures=[plan.report_figure_path(f) for f in plan.report_figures(config)],
    output:
        report(
            layout.REPORT_HTML,
            caption="../report/index.rst",
            category="HTML report",
        ),
    log:
        layout.log("make_report"),
    benchmark:
        layout.benchmark("make_report")
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.report_params_json(config),
        tables=lambda w, input: Path(input[0]).parent,
    shell:
        "python -m edgeopt report --tables {params.tables:q} --figures {input.figures:q}"
        " --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"
