from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages

stages.compile_member(
    snakemake.params.settings, snakemake.input[0], snakemake.output[0], snakemake.log[0]
)
