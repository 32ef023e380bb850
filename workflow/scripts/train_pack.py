from almomd.runner import setup_job

setup_job(snakemake.log[0], snakemake.threads)
from almomd import layout, stages
from almomd.settings.sections import Settings

iteration = int(snakemake.wildcards.iteration)
pack = [tuple(member) for member in snakemake.params.pack]
inputs = dict(snakemake.input.items())
stages.train_pack(
    Settings.from_config(snakemake.params.settings),
    iteration=iteration,
    pack=pack,
    elements=snakemake.params.elements,
    subset_files={k: inputs[f"subset_{k}"] for k, _ in pack},
    run_dirs=[layout.TRAINING_RUN.format(iteration=iteration, subset=k, seed=m) for k, m in pack],
    models_out=list(snakemake.output),
    init_models={(k, m): inputs[f"init_{k}_{m}"] for k, m in pack if f"init_{k}_{m}" in inputs},
)
