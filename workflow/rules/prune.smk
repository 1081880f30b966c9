# Rules of the prune stage (see README). Targets are planned in src/edgeopt/plan.py.


wildcard_constraints:
    recipe_variant="pruned|zeropad|sparse",
    width_mult="[0-9]+(\.[0-9]+)?",


rule plan_pruning:
    input:
        unpack(lambda w: plan.plan_pruning_inputs(config, w.model, w.recipe_variant)),
    output:
        "results/recipes/{model}/{recipe_variant}.yaml",
    log:
        "results/logs/plan_pruning/{model}-{recipe_variant}.log",
    benchmark:
        "results/benchmarks/plan_pruning/{model}-{recipe_variant}.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    threads: lambda w: workflow.cores if plan.plan_times_latency(config, w.recipe_variant) else 1
    params:
        cfg=lambda w: plan.prune_plan_json(config, w.recipe_variant),
        extra=lambda w, input: " ".join(
            f"--{k.replace('_', '-')} {shlex.quote(str(input[k]))}"
            for k in ("sensitivity", "bench", "latency_table")
            if k in input.keys()
        ),
    shell:
        "python -m edgeopt prune-plan --variant {wildcards.recipe_variant} --model {input.model:q}"
        " --model-name {wildcards.model} {params.extra} --params {params.cfg:q} --out {output:q}"
        " > {log:q} 2>&1"


# Latency tables are measured on the device (over SSH unless local), like benchmarks: on the submitting host.
localrules:
    build_latency_table,


rule build_latency_table:
    input:
        model="results/models/{model}/baseline/model.pt",
    output:
        table="results/latency/{device}/{model}/{format}.csv",
        info="results/latency/{device}/{model}/{format}.csv.json",
    log:
        "results/logs/build_latency_table/{device}/{model}/{format}.log",
    benchmark:
        "results/benchmarks/build_latency_table/{device}/{model}/{format}.tsv"
    wildcard_constraints:
        device="[A-Za-z0-9_.-]+",
        format="(ort|tflite)-[a-z0-9]+",
    conda:
        "../../envs/edgeopt.yaml"
    threads: lambda w: plan.device_job_threads(config, w.device, workflow.cores)
    resources:
        **plan.device_resources(config),
    params:
        cfg=lambda w: plan.latency_table_json(config),
        device=lambda w: plan.device_json(config, w.device),
    shell:
        "python -m edgeopt latency-table --model {input.model:q} --model-name {wildcards.model:q}"
        " --device {wildcards.device:q} --device-params {params.device:q} --format {wildcards.format:q}"
        " --params {params.cfg:q} --out {output.table:q} > {log:q} 2>&1"


rule prune_model:
    input:
        recipe="results/recipes/{model}/{recipe_variant}.yaml",
        model="results/models/{model}/baseline/model.pt",
        baseline="results/models/{model}/baseline/metrics.json",
        train=f"{DATA}/train.npz",
        val=f"{DATA}/val.npz",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        model="results/models/{model}/{recipe_variant}/model.pt",
        metrics="results/models/{model}/{recipe_variant}/metrics.json",
    log:
        "results/logs/prune_model/{model}-{recipe_variant}.log",
    benchmark:
        "results/benchmarks/prune_model/{model}-{recipe_variant}.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    threads: workflow.cores
    resources:
        gpu=1,
    params:
        cfg=plan.section_json(config, "train"),
        data=lambda w, input: Path(input.meta).parent,
        checkpoint=lambda w, output: Path(output.model).with_name("checkpoint.pt"),
    shell:
        "python -m edgeopt prune --recipe {input.recipe:q} --model {input.model:q}"
        " --baseline-metrics {input.baseline:q} --data {params.data:q} --params {params.cfg:q}"
        " --out-model {output.model:q} --out-metrics {output.metrics:q}"
        " --checkpoint {params.checkpoint:q} --threads {threads} > {log:q} 2>&1"


rule train_width:
    input:
        unpack(lambda w: plan.train_width_inputs(config, w.model)),
    output:
        model="results/models/{model}/width{width_mult}/model.pt",
        metrics="results/models/{model}/width{width_mult}/metrics.json",
    log:
        "results/logs/train_width/{model}-{width_mult}.log",
    benchmark:
        "results/benchmarks/train_width/{model}-{width_mult}.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    threads: workflow.cores
    resources:
        gpu=1,
    params:
        cfg=plan.section_json(config, "train"),
        data=lambda w, input: Path(input.meta).parent,
        pruned=lambda w, input: (
            f"--pruned-metrics {shlex.quote(input.pruned)}"
            if "pruned" in input.keys()
            else ""
        ),
        checkpoint=lambda w, output: Path(output.model).with_name("checkpoint.pt"),
    shell:
        "python -m edgeopt train-width --model {wildcards.model} --width-mult {wildcards.width_mult}"
        " --data {params.data:q} --params {params.cfg:q} {params.pruned}"
        " --out-model {output.model:q} --out-metrics {output.metrics:q}"
        " --checkpoint {params.checkpoint:q} --threads {threads} > {log:q} 2>&1"
