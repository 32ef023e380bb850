from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.settings.sections import Settings

stages.explore_pack(
    Settings.from_config(snakemake.params.settings),
    iteration=int(snakemake.wildcards.iteration),
    walkers=list(snakemake.params.walkers),
    model_files=list(snakemake.input.models),
    novelty_file=snakemake.input.novelty,
    previous=list(snakemake.input.previous),
    out=list(snakemake.output),
)
