from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.merge_labels(
    snakemake.params.settings,
    snakemake.input.train,
    snakemake.input.selected,
    list(snakemake.input.labeled),
    list(snakemake.input.failed),
    snakemake.output[0],
)
