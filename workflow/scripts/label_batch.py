from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.labeling.labelers import launcher_command

stages.label_batch(
    snakemake.params.settings,
    snakemake.input.frames,
    int(snakemake.wildcards.batch),
    snakemake.output.labeled,
    snakemake.output.failed,
    launcher_command(snakemake.resources.get("mpi"), snakemake.resources.get("tasks")),
)
