# Rules of the retrain stage (see README). Targets are planned in src/edgeopt/plan/retrain.py.
# The retrain section is checked here so a bad framework (tensorrt) or device stops the run in one line.
from edgeopt.errors import EdgeoptError as _RetrainError

try:
    plan.retrain_jobs(config)
except _RetrainError as exc:
    raise SystemExit(f"edgeopt: {exc}")


localrules:
    retrain_model,


rule retrain_model:
    input:
        model=lambda w: plan.retrain_model_path(config, w.model),
        train=DATA["train"],
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        metrics=layout.RETRAIN_RESULT,
    log:
        layout.log("retrain_model", "{device}/{model}/{framework}-{setting}"),
    benchmark:
        layout.benchmark("retrain_model", "{device}/{model}/{framework}-{setting}")
    wildcard_constraints:
        framework="pytorch|onnxruntime",
    conda:
        "../../envs/edgeopt.yaml"
    threads: lambda w: plan.device_job_threads(config, w.device, workflow.cores)
    resources:
        **plan.device_resources(config),
    params:
        cfg=plan.section_json(config, "retrain"),
        dev=lambda w: plan.device_json(config, w.device),
        variant=config["retrain"]["variant"],
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt retrain --model-file {input.model:q} --data {params.data:q}"
        " --framework {wildcards.framework} --setting {wildcards.setting}"
        " --device {wildcards.device} --params {params.cfg:q} --device-params {params.dev:q}"
        " --model {wildcards.model} --variant {params.variant}"
        " --out {output.metrics:q} > {log:q} 2>&1"
