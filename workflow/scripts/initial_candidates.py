from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages  # noqa: E402

stages.initial_candidates(snakemake.config, snakemake.output[0])
