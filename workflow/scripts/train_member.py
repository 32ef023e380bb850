from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages

stages.train_member(
    snakemake.params.settings,
    int(snakemake.wildcards.iteration),
    int(snakemake.wildcards.subset),
    int(snakemake.wildcards.seed),
    snakemake.params.elements,
    snakemake.input.subset,
    snakemake.params.run_dir,
    snakemake.output.model,
    snakemake.input.get("init"),
)
