from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.heldout_dataset(
    snakemake.params.settings, files=list(snakemake.input), out=snakemake.output[0]
)
