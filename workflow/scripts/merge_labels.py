from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages
from almomd.settings.sections import Settings

stages.merge_labels(
    Settings.from_config(snakemake.params.settings),
    train_file=snakemake.input.train,
    selected_file=snakemake.input.selected,
    labeled_files=list(snakemake.input.labeled),
    failed_files=list(snakemake.input.failed),
    out=snakemake.output[0],
)
