from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages
from almomd.settings.sections import Settings

stages.initial_datasets(
    Settings.from_config(snakemake.params.settings),
    candidates_file=snakemake.input.get("candidates"),
    labeled_files=snakemake.input.get("labeled", []),
    failed_files=snakemake.input.get("failed", []),
    out_train=snakemake.output.train,
    out_test=snakemake.output.test,
)
