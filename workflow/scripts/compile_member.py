from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.settings.sections import Settings

stages.compile_member(
    Settings.from_config(snakemake.params.settings),
    model=snakemake.input[0],
    out=snakemake.output[0],
    log_file=snakemake.log[0],
)
