"""Kept for campaign directories made by almomd before 0.2: their Snakefile reads
``from almomd.resources import snakefile``. New code uses :mod:`almomd.deploy`."""

from almomd.deploy import snakefile

__all__ = ["snakefile"]
