from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.settings.sections import Settings

stages.fit_novelty(
    Settings.from_config(snakemake.params.settings),
    iteration=int(snakemake.wildcards.iteration),
    model_files=list(snakemake.input.models),
    train_file=snakemake.input.train,
    heldout_files=list(snakemake.input.heldout),
    test_file=next(iter(snakemake.input.test), None),
    out=snakemake.output[0],
)
