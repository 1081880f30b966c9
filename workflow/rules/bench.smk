# Rules of the bench stage (see README). Targets are planned in src/edgeopt/plan/bench.py.
# One job per (device, model, variant, format): the harness runs on the device (over SSH unless local)
# and its JSON comes back. A failing device fails only its own jobs (use --keep-going for the others).
# Board jobs run on the submitting host (they only talk SSH): never as cluster jobs.


localrules:
    bench_model,


rule bench_model:
    input:
        model=lambda w: plan.bench_source(w.model, w.variant, w.format, config),
        test=DATA["test"],
        calib=DATA["calib"],
        meta=DATA["meta"],
    output:
        layout.BENCH_RESULT,
    log:
        layout.log("bench_model", "{device}/{model}/{variant}/{format}"),
    benchmark:
        layout.benchmark("bench_model", "{device}/{model}/{variant}/{format}")
    wildcard_constraints:
        device="[A-Za-z0-9_.-]+",
        variant="[A-Za-z0-9_.-]+",
        format="|".join(formats.FORMATS),
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
