rule prepare_data:
    output:
        train=DATA["train"],
        val=DATA["val"],
        test=DATA["test"],
        calib=DATA["calib"],
        meta=DATA["meta"],
    log:
        layout.log("prepare_data"),
    benchmark:
        layout.benchmark("prepare_data")
    conda:
        "../../envs/edgeopt.yaml"
    params:
        cfg=plan.section_json(config, "dataset"),
        out=lambda w, output: Path(output.meta).parent,
    shell:
        "python -m edgeopt prepare-data --params {params.cfg:q} --out {params.out:q} > {log:q} 2>&1"
