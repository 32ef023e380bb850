# Labeling selected frames with the configured calculator, in a fixed number of batches.


rule label_batch:
    input:
        frames="results/iter_{iteration}/selection/selected.extxyz",
    output:
        labeled=protected("results/iter_{iteration}/labels/labeled_{batch}.extxyz"),
        failed="results/iter_{iteration}/labels/failed_{batch}.extxyz",
    log:
        "logs/iter_{iteration}/label_{batch}.log",
    benchmark:
        "benchmarks/iter_{iteration}/label_{batch}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=2000,
        tasks=1,
    script:
        "../scripts/label_batch.py"
