from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.labeling.labelers import launcher_command
from almomd.settings.sections import Settings

stages.reference_md(
    Settings.from_config(snakemake.params.settings),
    condition=int(snakemake.wildcards.condition),
    out=snakemake.output.frames,
    dynamics_out=snakemake.output.get("dynamics"),
    launcher=launcher_command(snakemake.resources.get("mpi"), snakemake.resources.get("tasks")),
)
