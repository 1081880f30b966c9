rule train_baseline:
    input:
        train=f"{DATA}/train.npz",
        val=f"{DATA}/val.npz",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
        weights=lambda w: plan.weights_input(config, w.model),
    output:
        model="results/models/{model}/baseline/model.pt",
        metrics="results/models/{model}/baseline/metrics.json",
    log:
        "results/logs/train_baseline/{model}.log",
    benchmark:
        "results/benchmarks/train_baseline/{model}.tsv"
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
