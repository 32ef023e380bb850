from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd.reporting import status

status.write_status(".", snakemake.output[0])
