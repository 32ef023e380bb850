from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.select_frames(
    snakemake.params.settings,
    int(snakemake.wildcards.iteration),
    list(snakemake.input.walkers),
    snakemake.input.test_table,
    snakemake.input.heldout_summary,
    snakemake.input.heldout_table,
    snakemake.output.frames,
    snakemake.output.table,
    snakemake.output.summary,
)
