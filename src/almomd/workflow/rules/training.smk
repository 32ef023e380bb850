# Training the ensemble: K subsets x M seeds, one NequIP run per member.


rule subset:
    input:
        layout.TRAIN,
    output:
        layout.SUBSET,
    log:
        layout.log("subset_{subset}"),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    params:
        settings=settings("seed", "ensemble"),
    script:
        "../scripts/subset.py"


rule train_member:
    input:
        unpack(train_inputs),
    output:
        model=layout.MEMBER,
    log:
        layout.log("train_{subset}_{seed}"),
    benchmark:
        layout.benchmark("train_{subset}_{seed}")
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("train_member", config),
    params:
        settings=settings("seed", "ensemble", "model", "training"),
        elements=ELEMENTS,
        run_dir=layout.TRAINING_RUN,
    script:
        "../scripts/train_member.py"


rule compile_member:
    input:
        layout.MEMBER,
    output:
        layout.MEMBER_COMPILED,
    log:
        layout.log("compile_{subset}_{seed}"),
    benchmark:
        layout.benchmark("compile_{subset}_{seed}")
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("compile_member", config),
    params:
        settings=settings("training"),
    script:
        "../scripts/compile_member.py"
