from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages
from almomd.settings.sections import Settings

stages.subset(
    Settings.from_config(snakemake.params.settings),
    iteration=int(snakemake.wildcards.iteration),
    index=int(snakemake.wildcards.subset),
    train_file=snakemake.input[0],
    out=snakemake.output[0],
)
