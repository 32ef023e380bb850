from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.labeling.labelers import launcher_command
from almomd.settings.sections import Settings

stages.label_batch(
    Settings.from_config(snakemake.params.settings),
    frames_file=snakemake.input.frames,
    batch=int(snakemake.wildcards.batch),
    out_labeled=snakemake.output.labeled,
    out_failed=snakemake.output.failed,
    launcher=launcher_command(snakemake.resources.get("mpi"), snakemake.resources.get("tasks")),
)
