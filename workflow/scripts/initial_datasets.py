from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.initial_datasets(
    snakemake.params.settings,
    snakemake.input.get("candidates"),
    snakemake.input.get("labeled", []),
    snakemake.input.get("failed", []),
    snakemake.output.train,
    snakemake.output.test,
)
