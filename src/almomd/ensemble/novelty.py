"""Novelty: how far each atom's learned environment lies from the training set's.

The members of an ensemble trained on the same data can agree on an
environment none of them was taught (a vacancy's neighbours after a few
iterations of bulk-only training): their force spread stays level while the
error grows. The novelty signal looks at what the members see instead of what
they predict. Each member's last node features (NequIP's ``node_features``,
the input of the per-atom energy readout) describe an atom's environment as
that member has learned it. At training time every training atom's features
are stored per member and element, whitened: centred on the training atoms'
mean and scaled along each principal axis of their covariance by one over its
standard deviation (regularised by ``WHITENING_REGULARIZATION`` times the mean
variance). An atom's novelty for a member is the distance of its whitened
features to the nearest stored training atom of its element, in units of the
member's typical spacing of the training set (the 95 % quantile of the
distance from a training atom to the nearest training atom of another frame).
The ensemble's novelty of an atom is the members' mean: about 1 or less where
the training set is dense, several where it has never been.

Why whitened: thermal motion spreads the training atoms widely along a few
directions of feature space, and a plain Euclidean distance is dominated by
them; an environment the training set never had (a missing neighbour) moves
the features along directions in which the training atoms hardly vary, a small
step in Euclidean terms and a large one in whitened terms (a Mahalanobis
distance, as in Gaussian density models of latent features, kept
nearest-neighbour so that a training set of several structures or phases is
not blurred into one Gaussian). What whitening changed on CuI defects, and the
other choices measured: ``benchmarks/README.md`` (``defect_uncertainty.py``).

This is the feature-space distance family of uncertainty estimates (latent
distances and Gaussian mixtures over node features; see the docs' discussion of
the choice); a nearest-neighbour distance needs no fitted density, no choice of
mixture components and no retraining, and is evaluated in the ensemble's own
pass (the features come out with the energies).

The frame metrics are ``novelty`` (the largest atom novelty) and
``force_max_novelty``: the largest per-atom force spread scaled up by the
atom's novelty where it exceeds 1, ``max_i sigma_i * max(1, nu_i)``; within
the training set's reach it is the force spread, beyond it the spread grows
with the distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from almomd.ensemble.error_model import ErrorModel

#: Training atoms kept per member and element (drawn with a derived seed beyond it).
MAX_REFERENCE_ATOMS = 4000
#: The quantile of the training atoms' spacing taken as the unit of novelty.
SPACING_QUANTILE = 0.95
#: Added to every variance before whitening, times the mean variance.
WHITENING_REGULARIZATION = 1e-2
_CHUNK = 2048
#: The npz group of the held-out atoms an error model was fitted on.
ATOMS = "error_model_atoms"


def nearest_distances(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The Euclidean distance of each row of ``queries`` to its nearest row of ``reference``."""
    if len(reference) == 0:
        return np.full(len(queries), np.inf)
    ref_sq = (reference**2).sum(axis=1)
    found = np.empty(len(queries))
    for start in range(0, len(queries), _CHUNK):
        block = queries[start : start + _CHUNK]
        sq = (block**2).sum(axis=1)[:, None] + ref_sq[None, :] - 2.0 * block @ reference.T
        found[start : start + _CHUNK] = np.sqrt(np.maximum(sq.min(axis=1), 0.0))
    return found


def _spacing(features: np.ndarray, frames: np.ndarray) -> float:
    """The typical distance of a training atom to the nearest one of another frame."""
    distances = np.empty(len(features))
    for frame in np.unique(frames):
        inside = frames == frame
        distances[inside] = nearest_distances(features[inside], features[~inside])
    finite = distances[np.isfinite(distances)]
    if not len(finite):  # one training frame: the spread within it
        finite = np.linalg.norm(features - features.mean(axis=0), axis=1)
    return max(float(np.quantile(finite, SPACING_QUANTILE)), 1e-8)


@dataclass(frozen=True)
class Whitening:
    """``x -> (x - mean) @ transform``: unit variance along the training atoms' principal axes."""

    mean: np.ndarray
    transform: np.ndarray

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=float) - self.mean) @ self.transform

    @classmethod
    def fit(cls, features: np.ndarray) -> Whitening:
        """From training atoms' features ``(n, F)`` (regularised; one atom: the identity)."""
        features = np.asarray(features, dtype=float)
        if len(features) < 2:
            return cls.identity(features.shape[1])
        width = features.shape[1]
        variances, axes = np.linalg.eigh(np.cov(features, rowvar=False).reshape(width, width))
        variances = np.maximum(variances, 0.0)
        floor = WHITENING_REGULARIZATION * max(float(variances.mean()), 1e-12)
        return cls(features.mean(axis=0), axes / np.sqrt(variances + floor))

    @classmethod
    def identity(cls, width: int) -> Whitening:
        return cls(np.zeros(width), np.eye(width))


@dataclass(frozen=True)
class NoveltyReference:
    """Per member and element: the training atoms' whitened features, the whitening and
    the training set's spacing in those coordinates; and the error model of the spread
    and novelty fitted on held-out atoms, where one was (:mod:`almomd.ensemble.error_model`)."""

    features: tuple[dict[str, np.ndarray], ...]
    spacing: tuple[dict[str, float], ...]
    whitening: tuple[dict[str, Whitening], ...]
    error_model: ErrorModel | None = None

    @property
    def n_members(self) -> int:
        return len(self.features)

    @classmethod
    def fit(
        cls,
        member_features: Sequence[np.ndarray],
        symbols: Sequence[Sequence[str]],
        rng: np.random.Generator,
        whiten: bool = True,
    ) -> NoveltyReference:
        """Fit to the training frames: ``member_features[f]`` is frame f's ``(M, N_f, F)``
        (or one ``(N_f, F_m)`` array per member, where the members' widths differ).

        ``symbols[f]`` are frame f's chemical symbols. ``whiten=False`` keeps plain
        Euclidean distances (for comparison).
        """
        if not member_features:
            raise ValueError("novelty: no training frame to fit to")
        n_members = len(member_features[0])
        stacked = [
            np.concatenate([np.asarray(f[m], dtype=float) for f in member_features])
            for m in range(n_members)
        ]
        all_symbols = np.concatenate([np.asarray(s) for s in symbols])
        frames = np.concatenate([np.full(len(s), i) for i, s in enumerate(symbols)])
        features, spacing, whitening = [], [], []
        for member in stacked:
            kept, scale, white = {}, {}, {}
            for symbol in sorted(set(all_symbols)):
                rows = np.flatnonzero(all_symbols == symbol)
                if len(rows) > MAX_REFERENCE_ATOMS:
                    rows = np.sort(rng.choice(rows, MAX_REFERENCE_ATOMS, replace=False))
                white[symbol] = (
                    Whitening.fit(member[rows]) if whiten else Whitening.identity(member.shape[1])
                )
                kept[symbol] = white[symbol](member[rows])
                scale[symbol] = _spacing(kept[symbol], frames[rows])
            features.append(kept)
            spacing.append(scale)
            whitening.append(white)
        return cls(tuple(features), tuple(spacing), tuple(whitening))

    def novelty(self, member_features: Sequence[np.ndarray], symbols: Sequence[str]) -> np.ndarray:
        """Per-atom novelty ``(N,)`` of one frame from its members' features ``(M, N, F)``.

        An element the training set never had is infinitely novel.
        """
        member_features = [np.asarray(f, dtype=float) for f in member_features]
        if len(member_features) != self.n_members:
            raise ValueError(
                f"novelty reference of {self.n_members} members used with "
                f"{len(member_features)}: refit it to this ensemble"
            )
        symbols = np.asarray(symbols)
        values = np.zeros((self.n_members, len(symbols)))
        for m, (features, kept, scale, white) in enumerate(
            zip(member_features, self.features, self.spacing, self.whitening, strict=True)
        ):
            for symbol in set(symbols):
                rows = symbols == symbol
                if symbol not in kept:
                    values[m, rows] = np.inf
                    continue
                whitened = white[symbol](features[rows])
                values[m, rows] = nearest_distances(whitened, kept[symbol]) / scale[symbol]
        return values.mean(axis=0)

    def save(self, path: Path | str, atoms: pd.DataFrame | None = None) -> None:
        """Write the reference as one ``.npz`` file (with ``atoms``: the held-out atoms its
        error model was fitted on, :func:`fitted_atoms`)."""
        arrays = {}
        for m, (kept, scale, white) in enumerate(
            zip(self.features, self.spacing, self.whitening, strict=True)
        ):
            for symbol, features in kept.items():
                arrays[f"{m}/{symbol}/features"] = features
                arrays[f"{m}/{symbol}/spacing"] = np.array(scale[symbol])
                arrays[f"{m}/{symbol}/mean"] = white[symbol].mean
                arrays[f"{m}/{symbol}/transform"] = white[symbol].transform
        if self.error_model is not None:
            arrays["error_model"] = np.array(self.error_model.to_json())
        if atoms is not None:
            arrays |= {
                f"{ATOMS}/{name}": atoms[name].to_numpy(dtype=str if name == "system" else float)
                for name in atoms
            }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path: Path | str) -> NoveltyReference:
        """Read a reference written by :meth:`save` (one of an earlier version, without
        whitening, keeps its plain distances)."""
        with np.load(path) as stored:
            found = {tuple(name.split("/")): stored[name] for name in stored.files}
        model = found.pop(("error_model",), None)
        found = {name: value for name, value in found.items() if name[0] != ATOMS}
        n_members = 1 + max(int(member) for member, _, _ in found)
        features: list[dict[str, np.ndarray]] = [{} for _ in range(n_members)]
        spacing: list[dict[str, float]] = [{} for _ in range(n_members)]
        whitening: list[dict[str, Whitening]] = [{} for _ in range(n_members)]
        for (member, symbol, what), value in found.items():
            m = int(member)
            if what == "features":
                features[m][symbol] = value
                mean = found.get((member, symbol, "mean"))
                whitening[m][symbol] = (
                    Whitening.identity(value.shape[1])
                    if mean is None
                    else Whitening(mean, found[(member, symbol, "transform")])
                )
            elif what == "spacing":
                spacing[m][symbol] = float(value)
        error_model = None if model is None else ErrorModel.from_json(str(model))
        return cls(tuple(features), tuple(spacing), tuple(whitening), error_model)


def fitted_atoms(path: Path | str) -> pd.DataFrame | None:
    """The held-out atoms the reference's error model was fitted on (None: no such fit)."""
    with np.load(path) as stored:
        names = [n for n in stored.files if n.startswith(ATOMS + "/")]
        if not names:
            return None
        return pd.DataFrame({n.split("/", 1)[1]: stored[n] for n in names})


def stored_error_model(path: Path | str) -> ErrorModel | None:
    """The error model kept with the reference in ``path`` (read alone; None: none)."""
    with np.load(path) as stored:
        return ErrorModel.from_json(str(stored["error_model"])) if "error_model" in stored else None


def combined(sigma: np.ndarray, novelty: np.ndarray) -> float:
    """``force_max_novelty``: the largest per-atom force spread, scaled by novelty above 1."""
    return float((np.asarray(sigma) * np.maximum(1.0, np.asarray(novelty))).max())


def pooled_features(member_features: Sequence[np.ndarray], symbols: Sequence[str]) -> np.ndarray:
    """A frame's place in the members' feature space: per member and element (sorted), the
    mean of its atoms' node features, concatenated (what batch-diverse selection compares)."""
    symbols = np.asarray(symbols)
    elements = sorted(set(symbols.tolist()))
    return np.concatenate(
        [np.asarray(f, dtype=float)[symbols == e].mean(axis=0) for f in member_features
         for e in elements]
    )  # fmt: skip
