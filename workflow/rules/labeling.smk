# Labeling selected frames with the configured labeler, in a fixed number of batches.


rule label_batch:
    input:
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
