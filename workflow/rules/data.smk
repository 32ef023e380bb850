# Initial data: generated candidates, their labels, the first training set and the test set.


rule initial_candidates:
    input:
        unpack(initial_md_model),
    output:
        layout.INITIAL_CANDIDATES,
    log:
        layout.log("candidates", "initial"),
    benchmark:
        layout.benchmark("candidates", "initial")
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("initial_candidates", config),
    params:
        settings=settings("seed", "systems", "initial_data", "training", "exploration"),
    script:
        "../scripts/initial_candidates.py"


use rule label_batch as label_initial_batch with:
    input:
        unpack(labeler_checked),
        frames=layout.INITIAL_CANDIDATES,
    output:
        labeled=protected(layout.INITIAL_LABELED),
        failed=layout.INITIAL_FAILED,
    log:
        layout.log("label_{batch}", "initial"),
    benchmark:
        layout.benchmark("label_{batch}", "initial")


rule initial_datasets:
    input:
        unpack(labeler_checked),
        unpack(initial_labels),
    output:
        train=layout.TRAIN.format(iteration=0),
        test=layout.TEST_SET,
    log:
        layout.log("datasets", "initial"),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    params:
        settings=settings("seed", "systems", "initial_data", "test_set", "labeler"),
    script:
        "../scripts/initial_datasets.py"
