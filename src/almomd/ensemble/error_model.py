"""The force error that an atom's spread and novelty predict, fitted on held-out truth.

The members' force spread ``sigma_i`` can be blind: trained on the same data
they agree, and are all wrong, on an environment none of them was taught (a
vacancy's neighbours after a few iterations of bulk-only training: off by 0.6
eV/A with a spread of 0.05). The novelty ``nu_i`` (:mod:`almomd.ensemble.novelty`)
sees such an environment. A product ``sigma_i * max(1, nu_i)`` cannot lift a
blind spread, so the two are combined so that either alone can raise the
uncertainty: each atom's squared force error is modelled as

    e_i^2 = (a sigma_i)^2 + (b nu_i)^2

with ``a, b >= 0`` fitted by non-negative least squares on the per-atom squared
errors of the iteration's held-out frames (the truth at the exploration
conditions; the test set where there is none yet), then both scaled by one
factor so that the predicted mean squared error of those atoms is theirs (a fit
without a constant term does not match the mean by itself). Why this form:

- it is monotone in both signals and either alone raises it;
- ``a`` recalibrates the spread (an ensemble's spread is known to be too small
  by a roughly constant factor in its domain), ``b nu_i`` is the error the spread
  does not explain, taken to grow in proportion to the distance from the
  training set (an error that is Lipschitz in the learned features): at the
  training set's own spacing (``nu ~ 1``) it is the in-domain residual, twice as
  far it is twice that. That is the extrapolation, linear and no steeper; an
  element never trained on is infinitely uncertain;
- scaled to the held-out atoms' mean squared error, the frame metric
  ``force_error`` below is, on the held-out frames, the force RMSE the verdict
  reports, in the same units (eV/A).

The frame metric ``force_error`` is the predicted force RMSE of the frame,
``sqrt(mean_i e_i^2 / 3)`` (per Cartesian component, as the errors are
reported); ``force_error_max`` is its largest atom, ``max_i e_i / sqrt(3)``,
which a local event in a large cell moves more. What was measured to choose
between them and the alternatives (an additive ``a sigma + b nu``, the product):
``benchmarks/README.md`` (``defect_uncertainty.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

#: The error model's forms: the quadrature of the module docstring, or a sum.
FORMS = ("quadrature", "additive")


@dataclass(frozen=True)
class ErrorModel:
    """``e_i = sqrt((a sigma_i)^2 + (b nu_i)^2)`` (``additive``: ``a sigma_i + b nu_i``)."""

    spread: float
    novelty: float
    form: str = "quadrature"
    #: what it was fitted on: atoms, their force RMSE and what the fit predicts for it
    n_atoms: int = 0
    rmse: float = float("nan")
    rmse_fitted: float = float("nan")

    def per_atom(self, sigma: np.ndarray, novelty: np.ndarray) -> np.ndarray:
        """Each atom's predicted force error magnitude ``(N,)`` (eV/A, a vector norm)."""
        sigma, novelty = np.asarray(sigma, dtype=float), np.asarray(novelty, dtype=float)
        if self.form == "additive":
            return self.spread * sigma + self.novelty * novelty
        with np.errstate(over="ignore", invalid="ignore"):
            found = np.hypot(self.spread * sigma, self.novelty * novelty)
        return np.where(np.isinf(novelty), np.inf, found)

    def frame(self, sigma: np.ndarray, novelty: np.ndarray) -> dict[str, float]:
        """The frame metrics: predicted force RMSE and its largest atom (per component)."""
        e = self.per_atom(sigma, novelty)
        return {
            "force_error": float(np.sqrt(np.mean(e**2) / 3.0)),
            "force_error_max": float(np.max(e) / np.sqrt(3.0)),
        }

    @classmethod
    def fit(
        cls, sigma: np.ndarray, novelty: np.ndarray, error: np.ndarray, form: str = "quadrature"
    ) -> ErrorModel:
        """Fit to held-out atoms: their spreads, novelties and force error magnitudes."""
        from scipy.optimize import nnls

        if form not in FORMS:
            raise ValueError(f"error model form {form!r}: one of {', '.join(FORMS)}")
        sigma, novelty, error = (
            np.ravel(np.asarray(x, dtype=float)) for x in (sigma, novelty, error)
        )
        kept = np.isfinite(sigma) & np.isfinite(novelty) & np.isfinite(error)
        sigma, novelty, error = sigma[kept], novelty[kept], error[kept]
        if len(error) < 2:
            raise ValueError("error model: fewer than 2 atoms with finite errors to fit to")
        if form == "quadrature":
            (a2, b2), _ = nnls(np.column_stack([sigma**2, novelty**2]), error**2)
            a, b = float(np.sqrt(a2)), float(np.sqrt(b2))
        else:
            (a, b), _ = nnls(np.column_stack([sigma, novelty]), error)
        # least squares without a constant does not match the mean: scale both terms so the
        # predicted mean squared error is the atoms' own (their ratio stays the fit's)
        predicted = np.mean(cls(float(a), float(b), form).per_atom(sigma, novelty) ** 2)
        scale = float(np.sqrt(np.mean(error**2) / predicted)) if predicted > 0 else 1.0
        model = cls(a * scale, b * scale, form)
        fitted = model.per_atom(sigma, novelty)
        return cls(
            model.spread,
            model.novelty,
            form,
            n_atoms=len(error),
            rmse=float(np.sqrt(np.mean(error**2) / 3.0)),
            rmse_fitted=float(np.sqrt(np.mean(fitted**2) / 3.0)),
        )

    def summary(self, atoms: pd.DataFrame) -> dict[str, Any]:
        """How the model fits the atoms it was fitted on (``system``, ``sigma``, ``novelty``,
        ``error`` columns), pooled and per system: force RMSE and its prediction, the
        largest novelty seen (beyond it the model extrapolates) and Spearman's rank
        correlation of each atom's error with the prediction and with each signal."""
        from scipy.stats import spearmanr

        def figures(group: pd.DataFrame) -> dict[str, Any]:
            predicted = self.per_atom(group["sigma"], group["novelty"])
            rho = {}
            for name, signal in (("predicted", predicted), ("sigma", group["sigma"]),
                                 ("novelty", group["novelty"])):  # fmt: skip
                value = spearmanr(signal, group["error"]).statistic if len(group) > 2 else None
                rho[name] = None if value is None or np.isnan(value) else float(value)
            return {
                "n_atoms": len(group),
                "rmse": float(np.sqrt(np.mean(group["error"] ** 2) / 3.0)),
                "rmse_predicted": float(np.sqrt(np.mean(predicted**2) / 3.0)),
                "novelty_max": float(group["novelty"].max()),
                "spearman": rho,
            }

        return (
            asdict(self)
            | figures(atoms)
            | {"per_system": {str(name): figures(group) for name, group in atoms.groupby("system")}}
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ErrorModel:
        return cls(**json.loads(text))
