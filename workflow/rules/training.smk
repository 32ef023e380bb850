# Training the ensemble: K subsets x M seeds, a job per member or per pack of members; the novelty reference.


rule subset:
    input:
        ancient(layout.TRAIN),  # remade exactly, if lost (almomd.lineage)
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


if not PACKS:

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


# training.members_per_job > 1: a rule per pack of members, trained in one process
for index, pack in enumerate(PACKS):

    rule:
        name:
            pack_rule(index)
        input:
            unpack(pack_inputs(pack)),
        output:
            [layout.member_pattern(k, m) for k, m in pack],
        log:
            layout.log(pack_rule(index)),
        benchmark:
            layout.benchmark(pack_rule(index))
        conda:
            "../envs/almomd.yaml"
        threads: 1
        resources:
            **pack_resources(config, len(pack), profile_resources("train_member")),
        params:
            settings=settings("seed", "ensemble", "model", "training"),
            elements=ELEMENTS,
            pack=pack,
        script:
            "../scripts/train_pack.py"


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


rule fit_novelty:
    input:
        models=packaged_members,
        train=ancient(layout.TRAIN),
        heldout=error_model_frames,
        test=error_model_test_set,
    output:
        layout.NOVELTY,
    log:
        layout.log("fit_novelty"),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    params:
        settings=settings("seed", "training", *(["heldout"] if ERROR_MODEL else [])),
    script:
        "../scripts/fit_novelty.py"
