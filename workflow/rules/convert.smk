# Rules of the convert stage (see README). Targets are planned in src/edgeopt/plan.py.
# Every artifact is checked against its PyTorch model (accuracy + logit parity) by the same command.

# Wildcards are constrained per rule (not globally) so other stages' rules are unaffected.


rule export_onnx:
    input:
        model="results/models/{model}/{variant}/model.pt",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        onnx="results/deploy/{model}/{variant}/model.onnx",
        sidecar="results/deploy/{model}/{variant}/model.onnx.json",
    log:
        "results/logs/export_onnx/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/export_onnx/{model}/{variant}.tsv"
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
        onnx="results/deploy/{model}/{variant}/model.onnx",
        model="results/models/{model}/{variant}/model.pt",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        ort="results/deploy/{model}/{variant}/ort-fp32.onnx",
        sidecar="results/deploy/{model}/{variant}/ort-fp32.onnx.json",
    log:
        "results/logs/optimize_ort/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/optimize_ort/{model}/{variant}.tsv"
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
        model="results/models/{model}/{variant}/model.pt",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        tflite="results/deploy/{model}/{variant}/tflite-{precision}.tflite",
        sidecar="results/deploy/{model}/{variant}/tflite-{precision}.tflite.json",
    log:
        "results/logs/convert_tflite/{model}/{variant}-{precision}.log",
    benchmark:
        "results/benchmarks/convert_tflite/{model}/{variant}-{precision}.tsv"
    wildcard_constraints:
        model="[A-Za-z0-9_.-]+",
        variant="[A-Za-z0-9_.-]+",
        precision="fp32|fp16",
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.convert_params_json(config, "tflite", "parity", "eval"),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt convert --format tflite-{wildcards.precision} --model-file {input.model:q}"
        " --data {params.data:q} --params {params.cfg:q} --out {output.tflite:q} --threads {threads}"
        " > {log:q} 2>&1"
