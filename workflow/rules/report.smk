# Rules of the report stage (see README). Targets are planned in src/edgeopt/plan.py.
# collect_results gathers every other stage's targets (plan.report_inputs) into tables; one plot_* rule
# per figure (planned only when its data are part of the run); make_report writes the HTML page.
# Outputs wrapped in report() also make up `snakemake --report report.html`.
REPORT = plan.REPORT_DIR


report: "../report/workflow.rst"


rule collect_results:
    input:
        plan.report_inputs(config),
    output:
        results=report(
            f"{REPORT}/results.csv",
            caption="../report/results_table.rst",
            category="Tables",
        ),
        parquet=f"{REPORT}/results.parquet",
        sensitivity=f"{REPORT}/sensitivity.csv",
        qat_sweep=f"{REPORT}/qat_sweep.csv",
        retrain=f"{REPORT}/retrain.csv",
    log:
        "results/logs/collect_results.log",
    benchmark:
        "results/benchmarks/collect_results.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    params:
        out=lambda w, output: Path(output.results).parent,
    shell:
        "python -m edgeopt report-table --out {params.out:q}"
        " --inputs {input:q} > {log:q} 2>&1"


rule plot_accuracy_latency:
    input:
        rules.collect_results.output,
    output:
        report(
            f"{REPORT}/figures/accuracy_latency.png",
            caption="../report/accuracy_latency.rst",
            category="Accuracy vs latency",
        ),
    log:
        "results/logs/plot_accuracy_latency.log",
    benchmark:
        "results/benchmarks/plot_accuracy_latency.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.report_plot_json(config),
        tables=lambda w, input: Path(input[0]).parent,
    shell:
        "python -m edgeopt report-figure --figure accuracy_latency --tables {params.tables:q}"
        " --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule plot_accuracy_size:
    input:
        rules.collect_results.output,
    output:
        report(
            f"{REPORT}/figures/accuracy_size.png",
            caption="../report/accuracy_size.rst",
            category="Accuracy vs model size",
        ),
    log:
        "results/logs/plot_accuracy_size.log",
    benchmark:
        "results/benchmarks/plot_accuracy_size.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.report_plot_json(config),
        tables=lambda w, input: Path(input[0]).parent,
    shell:
        "python -m edgeopt report-figure --figure accuracy_size --tables {params.tables:q}"
        " --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule plot_sensitivity:
    input:
        rules.collect_results.output,
    output:
        report(
            f"{REPORT}/figures/sensitivity.png",
            caption="../report/sensitivity.rst",
            category="Pruning sensitivity",
        ),
    log:
        "results/logs/plot_sensitivity.log",
    benchmark:
        "results/benchmarks/plot_sensitivity.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.report_plot_json(config),
        tables=lambda w, input: Path(input[0]).parent,
    shell:
        "python -m edgeopt report-figure --figure sensitivity --tables {params.tables:q}"
        " --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule plot_qat_sweep:
    input:
        rules.collect_results.output,
    output:
        report(
            f"{REPORT}/figures/qat_sweep.png",
            caption="../report/qat_sweep.rst",
            category="Quantization",
        ),
    log:
        "results/logs/plot_qat_sweep.log",
    benchmark:
        "results/benchmarks/plot_qat_sweep.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.report_plot_json(config),
        tables=lambda w, input: Path(input[0]).parent,
    shell:
        "python -m edgeopt report-figure --figure qat_sweep --tables {params.tables:q}"
        " --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule plot_retrain_speedup:
    input:
        rules.collect_results.output,
    output:
        report(
            f"{REPORT}/figures/retrain_speedup.png",
            caption="../report/retrain_speedup.rst",
            category="On-device retraining",
        ),
    log:
        "results/logs/plot_retrain_speedup.log",
    benchmark:
        "results/benchmarks/plot_retrain_speedup.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.report_plot_json(config),
        tables=lambda w, input: Path(input[0]).parent,
    shell:
        "python -m edgeopt report-figure --figure retrain_speedup --tables {params.tables:q}"
        " --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule make_report:
    input:
        tables=rules.collect_results.output,
        figures=[plan.report_figure_path(f) for f in plan.report_figures(config)],
    output:
        report(
            f"{REPORT}/index.html",
            caption="../report/index.rst",
            category="HTML report",
        ),
    log:
        "results/logs/make_report.log",
    benchmark:
        "results/benchmarks/make_report.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.report_params_json(config),
        tables=lambda w, input: Path(input[0]).parent,
    shell:
        "python -m edgeopt report --tables {params.tables:q} --figures {input.figures:q}"
        " --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"
