# Production MD with a trained ensemble (not part of `all`): snakemake results/production/md.extxyz


rule production_md:
    input:
        campaign_decisions,
    output:
        trajectory=layout.PRODUCTION_TRAJECTORY,
        summary=layout.PRODUCTION_SUMMARY,
    log:
        layout.log("production_md", "production"),
    benchmark:
        layout.benchmark("md", "production")
    conda:
        "../envs/almomd.yaml"
    threads: 1
    resources:
        **rule_resources("production_md", config),
    params:
        settings=settings(
            "seed",
            "systems",
            "ensemble",
            "exploration",
            "uncertainty",
            "training",
            "production",
        ),
    script:
        "../scripts/production_md.py"
