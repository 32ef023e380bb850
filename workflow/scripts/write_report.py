from pathlib import Path

from almomd.runner import setup_job

setup_job(snakemake.log[0])
from almomd.reporting import report

summary = report.write_report(".", snakemake.params.key, Path(snakemake.output.summary).parent)
print(f"report: {snakemake.output.summary} ({summary['reason']})")
