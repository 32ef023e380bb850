from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.settings.sections import Settings

stages.evaluate_heldout(
    Settings.from_config(snakemake.params.settings),
    iteration=int(snakemake.wildcards.iteration),
    model_files=list(snakemake.input.models),
    novelty_file=snakemake.input.novelty,
    test_file=snakemake.input.test,
    frame_files=list(snakemake.input.frames),
    out_summary=snakemake.output.summary,
    out_table=snakemake.output.table,
)
