# Production MD with a trained ensemble (not part of `all`): snakemake results/production/md.extxyz


rule production_md:
    input:
        campaign_decisions,
    output:
        trajectory="results/production/md.extxyz",
        summary="results/production/summary.json",
    log:
        "logs/production.log",
    benchmark:
        "benchmarks/production/md.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
        gpu=1 if config["training"]["device"] == "cuda" else 0,
    script:
        "../scripts/production_md.py"
