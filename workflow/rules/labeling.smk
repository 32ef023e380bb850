# Labeling selected frames with the configured labeler, in a fixed number of batches.


rule labeler_check:
    output:
        layout.LABELER_CHECK,
    log:
        layout.log("labeler_check", "initial"),
    benchmark:
        layout.benchmark("labeler_check", "initial")
    priority: 10  # before anything else: every labeling job waits for it
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("labeler_check", config),
    params:
        settings=settings("systems", "labeler"),
    script:
        "../scripts/labeler_check.py"


rule label_batch:
    input:
        unpack(labeler_checked),
        frames=layout.SELECTED,
    output:
        labeled=protected(layout.LABELED),
        failed=layout.FAILED,
    log:
        layout.log("label_{batch}"),
    benchmark:
        layout.benchmark("label_{batch}")
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("label_batch", config),
    params:
        settings=settings("labeler"),
    script:
        "../scripts/label_batch.py"
