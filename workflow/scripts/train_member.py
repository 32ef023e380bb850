from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import stages
from almomd.settings.sections import Settings

stages.train_member(
    Settings.from_config(snakemake.params.settings),
    iteration=int(snakemake.wildcards.iteration),
    subset_index=int(snakemake.wildcards.subset),
    seed_index=int(snakemake.wildcards.seed),
    elements=snakemake.params.elements,
    subset_file=snakemake.input.subset,
    run_dir=snakemake.params.run_dir,
    model_out=snakemake.output.model,
    init_model=snakemake.input.get("init"),
)
