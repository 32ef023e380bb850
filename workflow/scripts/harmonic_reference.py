from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.labeling.labelers import launcher_command
from almomd.settings.sections import Settings

stages.harmonic_reference(
    Settings.from_config(snakemake.params.settings),
    system=snakemake.wildcards.system,
    out=snakemake.output[0],
    launcher=launcher_command(snakemake.resources.get("mpi"), snakemake.resources.get("tasks")),
)
