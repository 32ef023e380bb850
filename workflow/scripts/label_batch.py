from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages

stages.label_batch(
    snakemake.config,
    snakemake.input.frames,
    int(snakemake.wildcards.batch),
    snakemake.output.labeled,
    snakemake.output.failed,
)
