# Held-out truth at the exploration conditions (heldout.source) and the ensemble's errors on it.


rule reference_md:
    output:
        protected("results/heldout/reference_{condition}.extxyz"),
    log:
        "logs/heldout/reference_{condition}.log",
    benchmark:
        "benchmarks/heldout/reference_{condition}.tsv"
    priority: -1  # after the jobs the first iteration waits for; needed only at evaluation
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=120,
        mem_mb=2000,
        tasks=1,
    script:
        "../scripts/reference_md.py"


rule heldout_dataset:
    input:
        heldout_sources,
    output:
        "results/data/heldout.extxyz",
    log:
        "logs/heldout/dataset.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/heldout_dataset.py"


rule evaluate_heldout:
    input:
        models=member_models,
        test="results/data/test.extxyz",
        frames=heldout_frames,
    output:
        summary="results/iter_{iteration}/eval/heldout.json",
        table="results/iter_{iteration}/eval/heldout_predictions.csv",
    log:
        "logs/iter_{iteration}/evaluate_heldout.log",
    benchmark:
        "benchmarks/iter_{iteration}/evaluate_heldout.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    script:
        "../scripts/evaluate_heldout.py"
