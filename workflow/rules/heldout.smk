# Held-out truth at the exploration conditions (heldout.source) and the ensemble's errors on it.


rule reference_md:
    input:
        unpack(labeler_checked),
    output:
        **REFERENCE_OUTPUTS,
    log:
        layout.log("reference_{condition}", "heldout"),
    benchmark:
        layout.benchmark("reference_{condition}", "heldout")
    priority: -1  # after the jobs the first iteration waits for; needed only at evaluation
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("reference_md", config),
    params:
        settings=settings("seed", "systems", "exploration", "heldout", "labeler"),
    script:
        "../scripts/reference_md.py"


rule heldout_dataset:
    input:
        heldout_sources,
    output:
        layout.HELDOUT_SET,
    log:
        layout.log("dataset", "heldout"),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    params:
        settings=settings("systems", "heldout"),
    script:
        "../scripts/heldout_dataset.py"


rule evaluate_heldout:
    input:
        models=member_models,
        novelty=ancient(layout.NOVELTY),
        test=ancient(layout.TEST_SET),  # remade exactly, if lost (almomd.lineage)
        frames=heldout_frames,
    output:
        summary=layout.HELDOUT_SUMMARY,
        table=layout.HELDOUT_TABLE,
    log:
        layout.log("evaluate_heldout"),
    benchmark:
        layout.benchmark("evaluate_heldout")
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("evaluate_heldout", config),
    params:
        settings=settings(
            "seed",
            "systems",
            "heldout",
            "training",
            "exploration",
            "uncertainty",
            "selection",
            "convergence",
        ),
    script:
        "../scripts/evaluate_heldout.py"
