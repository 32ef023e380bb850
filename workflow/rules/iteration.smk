# Selection, merging, the convergence checkpoint, the campaign status and report.


rule select_frames:
    input:
        walkers=walker_trajectories,
        test_table=layout.TEST_TABLE,
        heldout_summary=layout.HELDOUT_SUMMARY,
        heldout_table=layout.HELDOUT_TABLE,
    output:
        frames=layout.SELECTED,
        table=layout.CANDIDATES,
        summary=layout.SELECTION_SUMMARY,
    log:
        layout.log("select_frames"),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    params:
        settings=settings(
            "seed", "systems", "exploration", "heldout", "uncertainty", "selection"
        ),
    script:
        "../scripts/select_frames.py"


rule merge_labels:
    input:
        unpack(previous_iteration),
    output:
        layout.TRAIN.replace("{iteration}", "{next_iteration}"),
    log:
        layout.log("merge_labels", "iter_{next_iteration}"),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    params:
        settings=settings("labeler"),
    script:
        "../scripts/merge_labels.py"


checkpoint decide:
    input:
        metrics=layout.TEST_METRICS,
        heldout_summary=layout.HELDOUT_SUMMARY,
        heldout_table=layout.HELDOUT_TABLE,
        selections=selection_history,
        observables=iteration_observables,
    output:
        layout.DECISION,
    log:
        layout.log("decide"),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    params:
        settings=settings("max_iterations", "uncertainty", "convergence"),
        campaign=config,
        changes=stop_rule_changes,
    script:
        "../scripts/decide.py"


# the last decided iteration decided again, after the stop rules changed (decision_N.json);
# a checkpoint of its own (`use rule` makes a rule, not a checkpoint)
checkpoint redecide:
    input:
        metrics=layout.TEST_METRICS,
        heldout_summary=layout.HELDOUT_SUMMARY,
        heldout_table=layout.HELDOUT_TABLE,
        selections=selection_history,
        observables=iteration_observables,
    output:
        layout.REDECISION,
    log:
        layout.log("decide_{redecision}"),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    params:
        settings=settings("max_iterations", "uncertainty", "convergence"),
        campaign=config,
        changes=stop_rule_changes,
    script:
        "../scripts/decide.py"


rule write_status:
    input:
        campaign_decisions,
    output:
        layout.STATUS,
    log:
        layout.log("write_status", ""),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    script:
        "../scripts/write_status.py"


rule write_report:
    input:
        status=layout.STATUS,
        decisions=campaign_decisions,
    output:
        summary=report(f"{layout.REPORT_DIR}/report.html", category="Summary"),
        markdown=f"{layout.REPORT_DIR}/report.md",
        figures=[
            report(f"{layout.REPORT_DIR}/{name}", category="Figures")
            for name in FIGURES
        ],
    log:
        layout.log("write_report", ""),
    localrule: True
    conda:
        "../envs/almomd.yaml"
    params:
        key=UNCERTAINTY_KEY,
    script:
        "../scripts/write_report.py"
