# Exploration with the ensemble, and its evaluation on the fixed test set.


rule explore:
    input:
        member_models,
    output:
        "results/iter_{iteration}/explore/walker_{walker}.extxyz",
    log:
        "logs/iter_{iteration}/explore_{walker}.log",
    benchmark:
        "benchmarks/iter_{iteration}/explore_{walker}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
        gpu=1 if config["training"]["device"] == "cuda" else 0,
    script:
        "../scripts/explore.py"


rule evaluate:
    input:
        models=member_models,
        test="results/data/test.extxyz",
    output:
        metrics="results/iter_{iteration}/eval/metrics.json",
        table="results/iter_{iteration}/eval/test_predictions.csv",
        forces="results/iter_{iteration}/eval/test_forces.txt",
    log:
        "logs/iter_{iteration}/evaluate.log",
    benchmark:
        "benchmarks/iter_{iteration}/evaluate.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    script:
        "../scripts/evaluate.py"
