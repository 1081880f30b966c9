# Rules of the sensitivity stage (see README). Targets are planned in src/edgeopt/plan/prune.py.


rule analyze_sensitivity:
    input:
        model=layout.fill(layout.MODEL_FILE, variant="baseline"),
        val=DATA["val"],
        train=DATA["train"],  # sensitivity.bn_recalib re-estimates BatchNorm statistics on it
        meta=DATA["meta"],
    output:
        csv=layout.SENSITIVITY_TABLE,
        png=layout.SENSITIVITY_PLOT,
    log:
        layout.log("analyze_sensitivity", "{model}"),
    benchmark:
        layout.benchmark("analyze_sensitivity", "{model}")
    conda:
        "../../envs/edgeopt.yaml"
    threads: workflow.cores
    resources:
        gpu=1,
    params:
        cfg=plan.sensitivity_json(config),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt sensitivity --model {input.model:q} --data {params.data:q}"
        " --params {params.cfg:q} --out-csv {output.csv:q} --out-png {output.png:q}"
        " --threads {threads} > {log:q} 2>&1"
