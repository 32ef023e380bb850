from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.settings.sections import Settings

stages.observables(
    Settings.from_config(snakemake.params.settings),
    iteration=int(snakemake.wildcards.iteration),
    condition=int(snakemake.wildcards.condition),
    models=list(snakemake.input.models),
    reference=list(snakemake.input.reference),
    harmonic=list(snakemake.input.harmonic),
    out=snakemake.output.summary,
    out_curves=snakemake.output.curves,
    out_md=snakemake.output.md,
)
