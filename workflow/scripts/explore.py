from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages

stages.explore(
    snakemake.params.settings,
    int(snakemake.wildcards.iteration),
    int(snakemake.wildcards.walker),
    list(snakemake.input),
    snakemake.output[0],
)
