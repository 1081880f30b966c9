rule prepare_data:
    output:
        train=f"{DATA}/train.npz",
        val=f"{DATA}/val.npz",
        test=f"{DATA}/test.npz",
        calib=f"{DATA}/calib.npz",
        meta=f"{DATA}/meta.json",
    log:
        "results/logs/prepare_data.log",
    benchmark:
        "results/benchmarks/prepare_data.tsv"
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.section_json(config, "dataset"),
        out=lambda w, output: Path(output.meta).parent,
    shell:
        "python -m edgeopt prepare-data --params {params.cfg:q} --out {params.out:q} > {log:q} 2>&1"
