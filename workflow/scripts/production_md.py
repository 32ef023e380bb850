from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.settings.sections import Settings

stages.production_md(
    Settings.from_config(snakemake.params.settings),
    root=".",
    out=snakemake.output.trajectory,
    out_summary=snakemake.output.summary,
)
