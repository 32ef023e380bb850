# Training the ensemble: K subsets x M seeds, one NequIP run per member.


rule subset:
    input:
        "results/iter_{iteration}/train.extxyz",
    output:
        "results/iter_{iteration}/subsets/subset_{subset}.extxyz",
    log:
        "logs/iter_{iteration}/subset_{subset}.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/subset.py"


rule train_member:
    input:
        unpack(train_inputs),
    output:
        model="results/iter_{iteration}/models/member_{subset}_{seed}.nequip.zip",
    log:
        "logs/iter_{iteration}/train_{subset}_{seed}.log",
    benchmark:
        "benchmarks/iter_{iteration}/train_{subset}_{seed}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
        gpu=1 if config["training"]["device"] == "cuda" else 0,
    params:
        run_dir="results/iter_{iteration}/training/member_{subset}_{seed}",
    script:
        "../scripts/train_member.py"


rule compile_member:
    input:
        "results/iter_{iteration}/models/member_{subset}_{seed}.nequip.zip",
    output:
        "results/iter_{iteration}/models/member_{subset}_{seed}.nequip.pt2",
    log:
        "logs/iter_{iteration}/compile_{subset}_{seed}.log",
    benchmark:
        "benchmarks/iter_{iteration}/compile_{subset}_{seed}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=30,
        mem_mb=8000,
        gpu=1 if config["training"]["device"] == "cuda" else 0,
    script:
        "../scripts/compile_member.py"
