rule train_baseline:
    input:
        train=DATA["train"],
        val=DATA["val"],
        test=DATA["test"],
        meta=DATA["meta"],
        weights=lambda w: plan.weights_input(config, w.model),
    output:
        model=layout.fill(layout.MODEL_FILE, variant="baseline"),
        metrics=layout.fill(layout.MODEL_METRICS, variant="baseline"),
    log:
        layout.log("train_baseline", "{model}"),
    benchmark:
        layout.benchmark("train_baseline", "{model}")
    conda:
        "../../envs/edgeopt.yaml"
    threads: workflow.cores
    resources:
        gpu=1,
    params:
        cfg=plan.section_json(config, "train"),
        model_cfg=lambda w: plan.model_params_json(config, w.model),
        data=lambda w, input: Path(input.meta).parent,
        checkpoint=lambda w, output: Path(output.model).with_name("checkpoint.pt"),
    shell:
        "python -m edgeopt train --model {wildcards.model} --data {params.data:q}"
        " --params {params.cfg:q} --model-params {params.model_cfg:q}"
        " --out-model {output.model:q} --out-metrics {output.metrics:q}"
        " --checkpoint {params.checkpoint:q} --threads {threads} > {log:q} 2>&1"
