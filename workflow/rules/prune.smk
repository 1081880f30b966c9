# Rules of the prune stage (see README). Targets are planned in src/edgeopt/plan/prune.py.


wildcard_constraints:
    recipe_variant="|".join(plan.RECIPE_VARIANTS),
    width_mult="[0-9]+(\.[0-9]+)?",


rule plan_pruning:
    input:
        unpack(lambda w: plan.plan_pruning_inputs(config, w.model, w.recipe_variant)),
    output:
        layout.fill(layout.RECIPE, variant="{recipe_variant}"),
    log:
        layout.log("plan_pruning", "{model}-{recipe_variant}"),
    benchmark:
        layout.benchmark("plan_pruning", "{model}-{recipe_variant}")
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
        model=layout.fill(layout.MODEL_FILE, variant="baseline"),
    output:
        table=layout.LATENCY_TABLE,
        info=f"{layout.LATENCY_TABLE}.json",
    log:
        layout.log("build_latency_table", "{device}/{model}/{format}"),
    benchmark:
        layout.benchmark("build_latency_table", "{device}/{model}/{format}")
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
        recipe=layout.fill(layout.RECIPE, variant="{recipe_variant}"),
        model=layout.fill(layout.MODEL_FILE, variant="baseline"),
        baseline=layout.fill(layout.MODEL_METRICS, variant="baseline"),
        train=DATA["train"],
        val=DATA["val"],
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        model=layout.fill(layout.MODEL_FILE, variant="{recipe_variant}"),
        metrics=layout.fill(layout.MODEL_METRICS, variant="{recipe_variant}"),
    log:
        layout.log("prune_model", "{model}-{recipe_variant}"),
    benchmark:
        layout.benchmark("prune_model", "{model}-{recipe_variant}")
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
        model=layout.fill(layout.MODEL_FILE, variant="width{width_mult}"),
        metrics=layout.fill(layout.MODEL_METRICS, variant="width{width_mult}"),
    log:
        layout.log("train_width", "{model}-{width_mult}"),
    benchmark:
        layout.benchmark("train_width", "{model}-{width_mult}")
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
