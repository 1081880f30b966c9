# Models given only as an ONNX file (`models: [{name, onnx: file}]`): no PyTorch model, so these rules take the
# place of export_onnx, optimize_ort and quantize_ort for them (edgeopt.convert.onnx_model).


ruleorder: import_onnx > export_onnx
ruleorder: optimize_onnx_model > optimize_ort
ruleorder: quantize_onnx_model > quantize_ort


rule import_onnx:
    input:
        onnx=lambda w: plan.onnx_source(config, w.model),
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        onnx=layout.fill(layout.ONNX_EXPORT, variant="baseline"),
        sidecar=layout.fill(layout.ONNX_EXPORT_SIDECAR, variant="baseline"),
    log:
        layout.log("import_onnx", "{model}"),
    benchmark:
        layout.benchmark("import_onnx", "{model}")
    wildcard_constraints:
        model=plan.onnx_model_regex(config),
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.convert_params_json(config, "parity", "eval"),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt onnx-model --step import --onnx {input.onnx:q} --model {wildcards.model}"
        " --data {params.data:q} --params {params.cfg:q} --out {output.onnx:q} > {log:q} 2>&1"


rule optimize_onnx_model:
    input:
        onnx=layout.fill(layout.ONNX_EXPORT, variant="baseline"),
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        ort=layout.fill(plan.deploy_pattern("ort-fp32"), variant="baseline"),
        sidecar=layout.fill(
            plan.deploy_pattern("ort-fp32", sidecar=True), variant="baseline"
        ),
    log:
        layout.log("optimize_onnx_model", "{model}"),
    benchmark:
        layout.benchmark("optimize_onnx_model", "{model}")
    wildcard_constraints:
        model=plan.onnx_model_regex(config),
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.convert_params_json(config, "ort", "parity", "eval"),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt onnx-model --step ort-fp32 --onnx {input.onnx:q} --model {wildcards.model}"
        " --data {params.data:q} --params {params.cfg:q} --out {output.ort:q} > {log:q} 2>&1"


rule quantize_onnx_model:
    input:
        onnx=layout.fill(layout.ONNX_EXPORT, variant="baseline"),
        calib=DATA["calib"],
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        onnx=layout.fill(plan.deploy_pattern("ort-int8"), variant="baseline"),
        sidecar=layout.fill(
            plan.deploy_pattern("ort-int8", sidecar=True), variant="baseline"
        ),
    log:
        layout.log("quantize_onnx_model", "{model}"),
    benchmark:
        layout.benchmark("quantize_onnx_model", "{model}")
    wildcard_constraints:
        model=plan.onnx_model_regex(config),
    conda:
        "../../envs/edgeopt.yaml"
    threads: 2
    params:
        cfg=plan.convert_params_json(config, "parity", "eval"),
        quantize=plan.ptq_params_json(config),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt onnx-model --step ort-int8 --onnx {input.onnx:q} --model {wildcards.model}"
        " --data {params.data:q} --params {params.cfg:q} --quantize {params.quantize:q}"
        " --out {output.onnx:q} > {log:q} 2>&1"
