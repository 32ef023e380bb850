from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages

stages.evaluate(
    snakemake.params.settings,
    list(snakemake.input.models),
    snakemake.input.test,
    snakemake.output.metrics,
    snakemake.output.table,
    snakemake.output.forces,
)
