# Rules of the quantize stage (see README). Targets are planned in src/edgeopt/plan.py.


wildcard_constraints:
    variant="[A-Za-z0-9_.-]+",
    pair="w[2-8]a[2-8]",


rule quantize_ort:
    input:
        model="results/models/{model}/{variant}/model.pt",
        calib=f"{DATA}/calib.npz",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        onnx="results/deploy/{model}/{variant}/ort-int8.onnx",
        sidecar="results/deploy/{model}/{variant}/ort-int8.onnx.json",
    log:
        "results/logs/quantize_ort/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/quantize_ort/{model}/{variant}.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    threads: 2
    params:
        cfg=plan.ptq_params_json(config),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt quantize ptq-ort --model-file {input.model:q} --data {params.data:q}"
        " --params {params.cfg:q} --out {output.onnx:q} --model {wildcards.model}"
        " --variant {wildcards.variant} --threads {threads} > {log:q} 2>&1"


rule quantize_tflite:
    input:
        model="results/models/{model}/{variant}/model.pt",
        calib=f"{DATA}/calib.npz",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        tflite="results/deploy/{model}/{variant}/tflite-int8.tflite",
        sidecar="results/deploy/{model}/{variant}/tflite-int8.tflite.json",
    log:
        "results/logs/quantize_tflite/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/quantize_tflite/{model}/{variant}.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    threads: 2
    params:
        cfg=plan.ptq_params_json(config),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt quantize ptq-tflite --model-file {input.model:q} --data {params.data:q}"
        " --params {params.cfg:q} --out {output.tflite:q} --model {wildcards.model}"
        " --variant {wildcards.variant} --threads {threads} > {log:q} 2>&1"


rule quantize_trt_qdq:
    input:
        model="results/models/{model}/{variant}/model.pt",
        calib=f"{DATA}/calib.npz",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        onnx="results/deploy/{model}/{variant}/trt-qdq.onnx",
        sidecar="results/deploy/{model}/{variant}/trt-qdq.onnx.json",
    log:
        "results/logs/quantize_trt_qdq/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/quantize_trt_qdq/{model}/{variant}.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    threads: 2
    params:
        cfg=plan.ptq_params_json(config),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt quantize ptq-trt --model-file {input.model:q} --data {params.data:q}"
        " --params {params.cfg:q} --out {output.onnx:q} --model {wildcards.model}"
        " --variant {wildcards.variant} --threads {threads} > {log:q} 2>&1"


rule train_qat:
    input:
        model="results/models/{model}/{variant}/model.pt",
        train=f"{DATA}/train.npz",
        calib=f"{DATA}/calib.npz",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        result="results/quantize/{model}/{variant}/qat-{pair}.json",
        state="results/quantize/{model}/{variant}/qat-{pair}.pt",
    log:
        "results/logs/train_qat/{model}/{variant}/{pair}.log",
    benchmark:
        "results/benchmarks/train_qat/{model}/{variant}/{pair}.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    threads: workflow.cores
    resources:
        gpu=1,
    params:
        cfg=plan.qat_params_json(config),
        train_cfg=plan.section_json(config, "train"),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt quantize qat --model-file {input.model:q} --data {params.data:q}"
        " --params {params.cfg:q} --train-params {params.train_cfg:q} --bits {wildcards.pair}"
        " --out {output.result:q} --state-out {output.state:q} --model {wildcards.model}"
        " --variant {wildcards.variant} --threads {threads} > {log:q} 2>&1"


rule export_qat:
    input:
        model="results/models/{model}/{variant}/model.pt",
        state=lambda w: plan.qat_state_path(w.model, w.variant, plan.QAT_DEPLOY_PAIR),
        calib=f"{DATA}/calib.npz",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    output:
        artifact="results/deploy/{model}/{variant}/{qatformat}.{ext}",
        sidecar="results/deploy/{model}/{variant}/{qatformat}.{ext}.json",
    log:
        "results/logs/export_qat/{model}/{variant}/{qatformat}.{ext}.log",
    benchmark:
        "results/benchmarks/export_qat/{model}/{variant}/{qatformat}.{ext}.tsv"
    wildcard_constraints:
        qatformat="qat-[a-z]+-int8",
        ext="onnx|tflite",
    conda:
        "../../envs/edgeopt.yaml"
    threads: 2
    params:
        cfg=plan.ptq_params_json(config),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt quantize qat-export --format {wildcards.qatformat} --model-file {input.model:q}"
        " --qat-state {input.state:q} --data {params.data:q} --params {params.cfg:q}"
        " --out {output.artifact:q} --model {wildcards.model} --variant {wildcards.variant}"
        " --threads {threads} > {log:q} 2>&1"


rule sweep_qat:
    input:
        lambda w: [
            plan.qat_result_path(w.model, w.variant, p) for p in plan.qat_pairs(config)
        ],
    output:
        "results/quantize/{model}/{variant}/qat_sweep.csv",
    log:
        "results/logs/sweep_qat/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/sweep_qat/{model}/{variant}.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    shell:
        "python -m edgeopt quantize sweep --out {output:q} {input:q} > {log:q} 2>&1"
