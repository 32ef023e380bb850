from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages
from almomd.settings.sections import Settings

stages.initial_candidates(Settings.from_config(snakemake.params.settings), out=snakemake.output[0])
