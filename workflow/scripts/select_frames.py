from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages
from almomd.settings.sections import Settings

stages.select_frames(
    Settings.from_config(snakemake.params.settings),
    iteration=int(snakemake.wildcards.iteration),
    walker_files=list(snakemake.input.walkers),
    test_table=snakemake.input.test_table,
    heldout_summary=snakemake.input.heldout_summary,
    heldout_table=snakemake.input.heldout_table,
    out_frames=snakemake.output.frames,
    out_table=snakemake.output.table,
    out_summary=snakemake.output.summary,
)
