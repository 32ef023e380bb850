from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.initial_candidates(snakemake.params.settings, out=snakemake.output[0])
