from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import stages

stages.redecide(
    iteration=int(snakemake.wildcards.iteration),
    number=int(snakemake.wildcards.redecision),
    rules=snakemake.params.rules,
    changes=snakemake.params.changes,
    out=snakemake.output[0],
)
