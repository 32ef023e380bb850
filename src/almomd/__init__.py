"""almomd: active-learning machine-operated molecular dynamics on Snakemake."""

__version__ = "0.1.0"
