from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages
from almomd.settings.sections import Settings

stages.decide(
    Settings.from_config(snakemake.params.settings),
    iteration=int(snakemake.wildcards.iteration),
    metrics_file=snakemake.input.metrics,
    heldout_summary=snakemake.input.heldout_summary,
    heldout_table=snakemake.input.heldout_table,
    selection_summaries=list(snakemake.input.selections),
    observable_files=list(snakemake.input.observables),
    out=snakemake.output[0],
    campaign=snakemake.params.campaign,
    number=int(snakemake.wildcards.get("redecision", 1)),
    changes=snakemake.params.changes,
)
