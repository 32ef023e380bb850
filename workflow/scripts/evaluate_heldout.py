from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages

stages.evaluate_heldout(
    snakemake.params.settings,
    int(snakemake.wildcards.iteration),
    list(snakemake.input.models),
    snakemake.input.test,
    list(snakemake.input.frames),
    snakemake.output.summary,
    snakemake.output.table,
)
