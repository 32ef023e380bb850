from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.decide(
    snakemake.params.settings,
    int(snakemake.wildcards.iteration),
    snakemake.input.metrics,
    snakemake.input.heldout_summary,
    snakemake.input.heldout_table,
    list(snakemake.input.selections),
    snakemake.output[0],
    campaign=snakemake.params.campaign,
)
