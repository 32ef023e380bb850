from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.subset(
    snakemake.params.settings,
    int(snakemake.wildcards.iteration),
    int(snakemake.wildcards.subset),
    snakemake.input[0],
    snakemake.output[0],
)
