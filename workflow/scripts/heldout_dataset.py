from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages
from almomd.settings.sections import Settings

stages.heldout_dataset(
    Settings.from_config(snakemake.params.settings),
    files=list(snakemake.input),
    out=snakemake.output[0],
)
