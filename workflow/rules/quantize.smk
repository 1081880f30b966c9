# Rules of the quantize stage (see README). Targets are planned in src/edgeopt/plan/quantize.py.


wildcard_constraints:
    variant="[A-Za-z0-9_.-]+",
    pair="w[2-8]a[2-8]",


rule quantize_ort:
    input:
        model=layout.MODEL_FILE,
        calib=DATA["calib"],
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        onnx=plan.deploy_pattern("ort-int8"),
        sidecar=plan.deploy_pattern("ort-int8", sidecar=True),
    log:
        layout.log("quantize_ort", "{model}/{variant}"),
    benchmark:
        layout.benchmark("quantize_ort", "{model}/{variant}")
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
        model=layout.MODEL_FILE,
        calib=DATA["calib"],
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        tflite=plan.deploy_pattern("tflite-int8"),
        sidecar=plan.deploy_pattern("tflite-int8", sidecar=True),
    log:
        layout.log("quantize_tflite", "{model}/{variant}"),
    benchmark:
        layout.benchmark("quantize_tflite", "{model}/{variant}")
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
        model=layout.MODEL_FILE,
        calib=DATA["calib"],
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        onnx=layout.TRT_QDQ,
        sidecar=layout.TRT_QDQ_SIDECAR,
    log:
        layout.log("quantize_trt_qdq", "{model}/{variant}"),
    benchmark:
        layout.benchmark("quantize_trt_qdq", "{model}/{variant}")
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
        model=layout.MODEL_FILE,
        train=DATA["train"],
        calib=DATA["calib"],
        test=DATA["test"],
        meta=DATA["meta"],
    output:
        layout.QAT_RESULT,
    log:
        layout.log("train_qat", "{model}/{variant}/{pair}"),
    benchmark:
        layout.benchmark("train_qat", "{model}/{variant}/{pair}")
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
        " --out {output:q} --model {wildcards.model} --variant {wildcards.variant}"
        " --threads {threads} > {log:q} 2>&1"


rule sweep_qat:
    input:
        lambda w: [
            plan.qat_result_path(w.model, w.variant, p) for p in plan.qat_pairs(config)
        ],
    output:
        layout.QAT_SWEEP,
    log:
        layout.log("sweep_qat", "{model}/{variant}"),
    benchmark:
        layout.benchmark("sweep_qat", "{model}/{variant}")
    conda:
        "../../envs/edgeopt.yaml"
    shell:
        "python -m edgeopt quantize sweep --out {output:q} {input:q} > {log:q} 2>&1"
