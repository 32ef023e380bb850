# Selection, merging, the convergence checkpoint, the campaign status and report.


rule select:
    input:
        walkers=walker_trajectories,
        test_table="results/iter_{iteration}/eval/test_predictions.csv",
        heldout_summary="results/iter_{iteration}/eval/heldout.json",
        heldout_table="results/iter_{iteration}/eval/heldout_predictions.csv",
    output:
        frames="results/iter_{iteration}/selection/selected.extxyz",
        table="results/iter_{iteration}/selection/candidates.csv",
        summary="results/iter_{iteration}/selection/summary.json",
    log:
        "logs/iter_{iteration}/select.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/select_frames.py"


rule merge:
    input:
        unpack(previous_iteration),
    output:
        "results/iter_{next_iteration}/train.extxyz",
    log:
        "logs/iter_{next_iteration}/merge.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/merge_labels.py"


checkpoint decide:
    input:
        metrics="results/iter_{iteration}/eval/metrics.json",
        heldout_summary="results/iter_{iteration}/eval/heldout.json",
        heldout_table="results/iter_{iteration}/eval/heldout_predictions.csv",
        selections=selection_history,
    output:
        "results/iter_{iteration}/decision.json",
    log:
        "logs/iter_{iteration}/decide.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/decide.py"


rule status:
    input:
        campaign_decisions,
    output:
        "results/status.json",
    log:
        "logs/status.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/write_status.py"


rule report:
    input:
        status="results/status.json",
        decisions=campaign_decisions,
    output:
        summary=report("results/report/report.html", category="Summary"),
        markdown="results/report/report.md",
        figures=[
            report(f"results/report/{name}", category="Figures") for name in FIGURES
        ],
    log:
        "logs/report.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        key=UNCERTAINTY_KEY,
    script:
        "../scripts/write_report.py"
