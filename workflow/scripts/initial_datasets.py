from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.initial_datasets(
    snakemake.params.settings,
    candidates_file=snakemake.input.get("candidates"),
    labeled_files=snakemake.input.get("labeled", []),
    failed_files=snakemake.input.get("failed", []),
    out_train=snakemake.output.train,
    out_test=snakemake.output.test,
)
