# Rules of the sensitivity stage (see README). Targets are planned in src/edgeopt/plan.py.


rule analyze_sensitivity:
    input:
        model="results/models/{model}/baseline/model.pt",
        val=f"{DATA}/val.npz",
        train=f"{DATA}/train.npz",  # sensitivity.bn_recalib re-estimates BatchNorm statistics on it
        meta=f"{DATA}/meta.json",
    output:
        csv="results/sensitivity/{model}/sensitivity.csv",
        png="results/sensitivity/{model}/sensitivity.png",
    log:
        "results/logs/analyze_sensitivity/{model}.log",
    benchmark:
        "results/benchmarks/analyze_sensitivity/{model}.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    threads: workflow.cores
    resources:
        gpu=1,
    params:
        cfg=plan.sensitivity_json(config),
        data=lambda w, input: Path(input.meta).parent,
    shell:
        "python -m edgeopt sensitivity --model {input.model:q} --data {params.data:q}"
        " --params {params.cfg:q} --out-csv {output.csv:q} --out-png {output.png:q}"
        " --threads {threads} > {log:q} 2>&1"
