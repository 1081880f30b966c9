# Rules of the convert stage (see README). Targets are planned in src/edgeopt/plan/convert.py.
# Every artifact is checked against its PyTorch model (accuracy + logit parity) by the same command.

# Wildcards are constrained per rule (not globally) so other stages' rules are unaffected.


rule export_onnx:
    input:
        model=layout.MODEL_FILE,
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        onnx=layout.ONNX_EXPORT,
        sidecar=layout.ONNX_EXPORT_SIDECAR,
    log:
        layout.log("export_onnx", "{model}/{variant}"),
    benchmark:
        layout.benchmark("export_onnx", "{model}/{variant}")
    wildcard_constraints:
        model="[A-Za-z0-9_.-]+",
        variant="[A-Za-z0-9_.-]+",
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.convert_params_json(config, "onnx", "parity", "eval"),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt convert --format onnx --model-file {input.model:q} --data {params.data:q}"
        " --params {params.cfg:q} --out {output.onnx:q} --threads {threads} > {log:q} 2>&1"


rule optimize_ort:
    input:
        onnx=layout.ONNX_EXPORT,
        model=layout.MODEL_FILE,
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        ort=plan.deploy_pattern("ort-fp32"),
        sidecar=plan.deploy_pattern("ort-fp32", sidecar=True),
    log:
        layout.log("optimize_ort", "{model}/{variant}"),
    benchmark:
        layout.benchmark("optimize_ort", "{model}/{variant}")
    wildcard_constraints:
        model="[A-Za-z0-9_.-]+",
        variant="[A-Za-z0-9_.-]+",
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.convert_params_json(config, "ort", "parity", "eval"),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt convert --format ort-fp32 --model-file {input.model:q} --onnx {input.onnx:q}"
        " --data {params.data:q} --params {params.cfg:q} --out {output.ort:q} --threads {threads}"
        " > {log:q} 2>&1"


rule convert_tflite:
    input:
        model=layout.MODEL_FILE,
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        tflite=plan.deploy_pattern("tflite-{precision}"),
        sidecar=plan.deploy_pattern("tflite-{precision}", sidecar=True),
    log:
        layout.log("convert_tflite", "{model}/{variant}-{precision}"),
    benchmark:
        layout.benchmark("convert_tflite", "{model}/{variant}-{precision}")
    wildcard_constraints:
        model="[A-Za-z0-9_.-]+",
        variant="[A-Za-z0-9_.-]+",
        precision="|".join(plan.tflite_convert_precisions()),
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.convert_params_json(config, "tflite", "parity", "eval"),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt convert --format tflite-{wildcards.precision} --model-file {input.model:q}"
        " --data {params.data:q} --params {params.cfg:q} --out {output.tflite:q} --threads {threads}"
        " > {log:q} 2>&1"
