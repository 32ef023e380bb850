# Exploration with the ensemble, and its evaluation on the fixed test set.


if not WALKER_PACKS:

    rule explore:
        input:
            models=member_models,
            novelty=ancient(layout.NOVELTY),
            previous=previous_walkers,
        output:
            layout.WALKER,
        log:
            layout.log("explore_{walker}"),
        benchmark:
            layout.benchmark("explore_{walker}")
        conda:
            "../envs/almomd.yaml"
        threads: 1
        resources:
            **rule_resources("explore", config),
        params:
            settings=settings(
                "seed", "systems", "exploration", "uncertainty", "training"
            ),
        script:
            "../scripts/explore.py"


# exploration.walkers_per_job > 1: a rule per pack of walkers, run in one pass
for index, pack in enumerate(WALKER_PACKS):

    rule:
        name:
            walker_pack_rule(index)
        input:
            models=member_models,
            novelty=ancient(layout.NOVELTY),
            previous=lambda wildcards, pack=pack: previous_walkers(wildcards, pack),
        output:
            [layout.walker_pattern(w) for w in pack],
        log:
            layout.log(walker_pack_rule(index)),
        benchmark:
            layout.benchmark(walker_pack_rule(index))
        conda:
            "../envs/almomd.yaml"
        threads: 1
        resources:
            **pack_resources(
                config,
                len(pack),
                profile_resources("explore"),
                family=WALKER_PACK_RULE,
            ),
        params:
            settings=settings(
                "seed", "systems", "exploration", "uncertainty", "training"
            ),
            walkers=pack,
        script:
            "../scripts/explore_pack.py"


rule evaluate:
    input:
        models=member_models,
        novelty=ancient(layout.NOVELTY),
        test=ancient(layout.TEST_SET),  # remade exactly, if lost (almomd.lineage)
    output:
        metrics=layout.TEST_METRICS,
        table=layout.TEST_TABLE,
        forces=layout.TEST_FORCES,
    log:
        layout.log("evaluate"),
    benchmark:
        layout.benchmark("evaluate")
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("evaluate", config),
    params:
        settings=settings("training", "exploration"),
    script:
        "../scripts/evaluate.py"
