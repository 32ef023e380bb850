"""Deterministic seeds derived from the campaign's base seed.

Seeds are never taken from the clock: every random choice of a campaign (data
split, subsets, model initialisation, initial velocities, acceptance draws) gets
its own seed, derived from the base seed and a tuple of labels that name the
choice. Changing one label changes only that seed.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(base: int, *labels: object) -> int:
    """Return a 31-bit seed derived from ``base`` and ``labels``.

    Parameters
    ----------
    base
        The campaign's base seed (``seed`` in the config).
    *labels
        Names and numbers identifying the random choice, e.g.
        ``("train", iteration, member)``.

    Returns
    -------
    int
        A non-negative integer below ``2**31`` (valid for numpy, torch and ASE).
    """
    text = "/".join([str(int(base))] + [str(label) for label in labels])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def rng_for(base: int, *labels: object) -> np.random.Generator:
    """Return a numpy generator seeded with :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(base, *labels))
