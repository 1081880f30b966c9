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
    params:
        cfg=plan.section_json(config, "dataset"),
        out=DATA,
    shell:
        "{EDGEOPT} prepare-data --params {params.cfg:q} --out {params.out:q} > {log:q} 2>&1"
