from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.settings.sections import Settings

stages.evaluate(
    Settings.from_config(snakemake.params.settings),
    model_files=list(snakemake.input.models),
    novelty_file=snakemake.input.novelty,
    test_file=snakemake.input.test,
    out_metrics=snakemake.output.metrics,
    out_table=snakemake.output.table,
    out_forces=snakemake.output.forces,
)
