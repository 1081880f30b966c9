# Models given only as an ONNX file (`models: [{name, onnx: file}]`): no PyTorch model, so these rules take the
# place of export_onnx, optimize_ort and quantize_ort for them (edgeopt.convert.onnx_model).


ruleorder: import_onnx > export_onnx
ruleorder: optimize_onnx_model > optimize_ort
ruleorder: quantize_onnx_model > quantize_ort


rule import_onnx:
    input:
        onnx=lambda w: plan.onnx_source(config, w.model),
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        onnx="results/deploy/{model}/baseline/model.onnx",
        sidecar="results/deploy/{model}/baseline/model.onnx.json",
    log:
        "results/logs/import_onnx/{model}.log",
    benchmark:
        "results/benchmarks/import_onnx/{model}.tsv"
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
        onnx="results/deploy/{model}/baseline/model.onnx",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        ort="results/deploy/{model}/baseline/ort-fp32.onnx",
        sidecar="results/deploy/{model}/baseline/ort-fp32.onnx.json",
    log:
        "results/logs/optimize_onnx_model/{model}.log",
    benchmark:
        "results/benchmarks/optimize_onnx_model/{model}.tsv"
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
        onnx="results/deploy/{model}/baseline/model.onnx",
        calib=f"{DATA}/calib.npz",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        onnx="results/deploy/{model}/baseline/ort-int8.onnx",
        sidecar="results/deploy/{model}/baseline/ort-int8.onnx.json",
    log:
        "results/logs/quantize_onnx_model/{model}.log",
    benchmark:
        "results/benchmarks/quantize_onnx_model/{model}.tsv"
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
