from pathlib import Path

from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd import status

status.write_status(Path(snakemake.output[0]).parent, snakemake.output[0])
