# Initial data: generated candidates, their labels, the first training set and the test set.


rule initial_candidates:
    output:
        "results/initial/candidates.extxyz",
    log:
        "logs/initial/candidates.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/initial_candidates.py"


use rule label_batch as label_initial_batch with:
    input:
        frames="results/initial/candidates.extxyz",
    output:
        labeled=protected("results/initial/labels/labeled_{batch}.extxyz"),
        failed="results/initial/labels/failed_{batch}.extxyz",
    log:
        "logs/initial/label_{batch}.log",
    benchmark:
        "benchmarks/initial/label_{batch}.tsv"


rule initial_datasets:
    input:
        unpack(initial_labels),
    output:
        train="results/iter_0/train.extxyz",
        test="results/data/test.extxyz",
    log:
        "logs/initial/datasets.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/initial_datasets.py"
