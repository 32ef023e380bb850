from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.merge_labels(
    snakemake.params.settings,
    train_file=snakemake.input.train,
    selected_file=snakemake.input.selected,
    labeled_files=list(snakemake.input.labeled),
    failed_files=list(snakemake.input.failed),
    out=snakemake.output[0],
)
