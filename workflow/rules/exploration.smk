# Exploration with the ensemble, and its evaluation on the fixed test set.


rule explore:
    input:
        models=member_models,
        novelty=ancient(layout.NOVELTY),
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
        settings=settings("seed", "systems", "exploration", "uncertainty", "training"),
    script:
        "../scripts/explore.py"


rule evaluate:
    input:
        models=member_models,
        novelty=ancient(layout.NOVELTY),
        test=layout.TEST_SET,
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
