# Rules of the bench stage (see README). Targets are planned in src/edgeopt/plan.py.
# One job per (device, model, variant, format): the harness runs on the device (over SSH unless local)
# and its JSON comes back. A failing device fails only its own jobs (use --keep-going for the others).
# Board jobs run on the submitting host (they only talk SSH): never as cluster jobs.


localrules:
    bench_model,


rule bench_model:
    input:
        model=lambda w: plan.bench_source(w.model, w.variant, w.format, config),
        test=f"{DATA}/test.npz",
        calib=f"{DATA}/calib.npz",
        meta=f"{DATA}/meta.json",
    output:
        "results/bench/{device}/{model}/{variant}/{format}.json",
    log:
        "results/logs/bench_model/{device}/{model}/{variant}/{format}.log",
    benchmark:
        "results/benchmarks/bench_model/{device}/{model}/{variant}/{format}.tsv"
    wildcard_constraints:
        device="[A-Za-z0-9_.-]+",
        variant="[A-Za-z0-9_.-]+",
        format="(qat-)?(ort|tflite|trt)-[a-z0-9]+",
    retries: config["bench"]["retries"]
    conda:
        "../../envs/edgeopt.yaml"
    threads: lambda w: plan.device_job_threads(config, w.device, workflow.cores)
    resources:
        **plan.device_resources(config),
    params:
        cfg=lambda w: plan.bench_params_json(config, w.format),
        device=lambda w: plan.device_json(config, w.device),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt bench-model --device {wildcards.device:q} --device-params {params.device:q}"
        " --params {params.cfg:q} --model {wildcards.model:q} --variant {wildcards.variant:q}"
        " --format {wildcards.format:q} --model-file {input.model:q} --data {params.data:q}"
        " --out {output:q} > {log:q} 2>&1 || {{ tail -n 1 {log:q} >&2; exit 1; }}"
