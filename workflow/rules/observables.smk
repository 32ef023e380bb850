# Observables of MLIP MD per iteration and condition, against the reference dynamics.


rule harmonic_reference:
    input:
        unpack(labeler_checked),
    output:
        protected(layout.HARMONIC),
    log:
        layout.log("harmonic_{system}", "heldout"),
    benchmark:
        layout.benchmark("harmonic_{system}", "heldout")
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("harmonic_reference", config),
    params:
        settings=settings("systems", "labeler"),
    script:
        "../scripts/harmonic_reference.py"


rule observables:
    input:
        models=member_models,
        reference=reference_dynamics,
        harmonic=harmonic_model,
    output:
        summary=layout.OBSERVABLES,
        curves=layout.OBSERVABLE_CURVES,
        md=layout.OBSERVABLE_MD,
    log:
        layout.log("observables_{condition}"),
    benchmark:
        layout.benchmark("observables_{condition}")
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("observables", config),
    params:
        settings=settings(
            "seed",
            "systems",
            "exploration",
            "heldout",
            "ensemble",
            "training",
            "observables",
        ),
    script:
        "../scripts/observables.py"
