from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.settings.sections import Settings

stages.explore(
    Settings.from_config(snakemake.params.settings),
    iteration=int(snakemake.wildcards.iteration),
    walker=int(snakemake.wildcards.walker),
    model_files=list(snakemake.input.models),
    novelty_file=snakemake.input.novelty,
    previous=next(iter(snakemake.input.previous), None),
    out=snakemake.output[0],
)
