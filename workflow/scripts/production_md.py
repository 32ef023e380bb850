from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages

stages.production_md(
    snakemake.params.settings,
    root=".",
    out=snakemake.output.trajectory,
    out_summary=snakemake.output.summary,
)
