"""The figures of the campaign report (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from almomd import layout  # noqa: E402
from almomd.data.frames import read_frames  # noqa: E402
from almomd.evaluation.heldout import error_for  # noqa: E402


def save(fig, out: Path) -> None:
    """Lay out ``fig``, write it to ``out`` (PNG) and free it."""
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def iteration_name(iteration: int) -> str:
    """The name of an iteration in figures and tables (``iter_3``)."""
    return f"iter_{iteration}"


def learning_curve_figure(status: list[dict], out: Path) -> None:
    fig, (ax_f, ax_e) = plt.subplots(1, 2, figsize=(9, 3.6))
    rows = [r for r in status if r["heldout_force_rmse"] is not None]
    n = np.array([r["n_train"] for r in rows], dtype=float)
    for ax, key, label in (
        (ax_f, "force_rmse", "force RMSE (eV/Å)"),
        (ax_e, "energy_rmse", "energy RMSE (eV/atom)"),
    ):
        value = np.array([r[f"heldout_{key}"] for r in rows], dtype=float)
        if key == "force_rmse":
            ci = np.array(
                [r["heldout_force_rmse_ci"] or [np.nan, np.nan] for r in rows], dtype=float
            )
            ci = np.nan_to_num(ci.reshape(-1, 2), nan=0.0)
            err = np.abs(np.vstack([value - ci[:, 0], ci[:, 1] - value]))
            ax.errorbar(n, value, yerr=err, fmt="o-", capsize=3, label="held-out (95% CI)")
        else:
            ax.plot(n, value, "o-", label="held-out")
        ax.plot([r["n_train"] for r in rows], [r[f"test_{key}"] for r in rows], "s--",
                color="grey", label="test set")  # fmt: skip
        ax.set_xlabel("labeled training frames")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle("Learning curve")
    save(fig, out)


def systems_figure(table: pd.DataFrame, out: Path) -> None:
    """Held-out force error, error/uncertainty and novelty per system over the iterations."""
    fig, (ax_f, ax_r, ax_n) = plt.subplots(1, 3, figsize=(12, 3.6))
    if not table.empty:
        for name, group in table.groupby(level="system", sort=False):
            iterations = group.index.get_level_values("iteration")
            ax_f.plot(iterations, group["heldout_force_rmse"].astype(float), "o-", label=name)
            ax_r.plot(iterations, group["error_to_uncertainty"].astype(float), "o-", label=name)
            if "novelty_heldout" in group:
                ax_n.plot(iterations, group["novelty_heldout"].astype(float), "o-", label=name)
        ax_f.legend(fontsize=7)
    ax_f.set_ylabel("held-out force RMSE (eV/Å)")
    ax_r.set_ylabel("error / RMS uncertainty")
    ax_n.set_ylabel("mean novelty of held-out frames")
    ax_n.axhline(1.0, color="0.6", lw=0.8)  # about the training set's own spacing
    for ax in (ax_f, ax_r, ax_n):
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("Per system (a higher error/uncertainty: the ensemble is overconfident there)")
    save(fig, out)


def parity_figure(table: pd.DataFrame, forces: np.ndarray, iteration: str, out: Path) -> None:
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(9, 4))
    e_ref = table["energy_ref"] / table["n_atoms"]
    e_pred = table["energy_pred"] / table["n_atoms"]
    for ax, ref, pred, unit in (
        (ax_e, e_ref, e_pred, "energy (eV/atom)"),
        (ax_f, forces[:, 0], forces[:, 1], "force component (eV/Å)"),
    ):
        ax.scatter(ref, pred, s=6, alpha=0.6)
        low, high = float(np.min([ref.min(), pred.min()])), float(np.max([ref.max(), pred.max()]))
        ax.plot([low, high], [low, high], "k--", lw=0.8)
        ax.set_xlabel(f"reference {unit}")
        ax.set_ylabel(f"ensemble {unit}")
        rmse = float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(ref)) ** 2)))
        ax.set_title(f"RMSE {rmse:.4g}")
    fig.suptitle(f"Test set, ensemble of {iteration}")
    save(fig, out)


def uncertainty_error_figure(table: pd.DataFrame, key: str, held: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.8, 4))
    error = error_for(key[2:])
    ax.scatter(table[key], table[error], s=10)
    ax.set_xlabel(f"ensemble uncertainty {key[2:]}")
    ax.set_ylabel(f"true {error.replace('_', ' ')} of the frame")
    rho = held["spearman"].get(key[2:], {})
    ax.set_title(
        f"iter {held['iteration']} ({held['source']}): Spearman ρ = {fmt(rho.get('rho'))}\n"
        f"95% CI {fmt(rho.get('low'))} to {fmt(rho.get('high'))}, n = {rho.get('n')}",
        fontsize=9,
    )
    save(fig, out)


def error_model_figure(atoms: pd.DataFrame | None, model: Any, iteration: int, out: Path) -> None:
    """Per held-out atom: force error against the spread and against the novelty, per
    system, with the error model's prediction (the other signal at its median) and the
    largest novelty it was fitted on (beyond it: extrapolated)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    if atoms is None or model is None:
        for ax in axes:
            ax.text(0.5, 0.5, "no error model\n(uncertainty.metric is not force_error*)",
                    ha="center", va="center", transform=ax.transAxes)  # fmt: skip
            ax.set_axis_off()
    else:
        for name, group in atoms.groupby("system"):
            axes[0].scatter(group["sigma"], group["error"], s=4, alpha=0.4, label=name)
            axes[1].scatter(group["novelty"], group["error"], s=4, alpha=0.4, label=name)
        for ax, signal, other in ((axes[0], "sigma", "novelty"), (axes[1], "novelty", "sigma")):
            grid = np.linspace(0.0, 1.5 * float(atoms[signal].max()), 100)
            fixed = np.full_like(grid, float(atoms[other].median()))
            pairs = (grid, fixed) if signal == "sigma" else (fixed, grid)
            ax.plot(grid, model.per_atom(*pairs), "k-", lw=1.2, label="error model")
            ax.set_ylabel("|force error| per atom (eV/Å)")
        axes[1].axvline(float(atoms["novelty"].max()), color="0.5", ls="--", lw=0.8)
        axes[1].text(float(atoms["novelty"].max()), axes[1].get_ylim()[1] * 0.95, " extrapolated",
                     fontsize=7, va="top")  # fmt: skip
        axes[0].set_xlabel("force spread σ_i (eV/Å)")
        axes[1].set_xlabel("novelty ν_i")
        axes[0].legend(fontsize=7, markerscale=3)
        fig.suptitle(
            f"Error model of iter {iteration}: e² = ({model.spread:.3g} σ)² + "
            f"({model.novelty:.3g} ν)², {len(atoms)} held-out atoms",
            fontsize=10,
        )
    save(fig, out)


def fmt(value: Any) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.2f}"
    )


def binned(u: np.ndarray, error: np.ndarray, n_bins: int = 5) -> pd.DataFrame:
    """Frames binned by uncertainty quantiles: mean uncertainty, RMS error and count per bin."""
    frame = pd.DataFrame({"u": np.asarray(u, dtype=float), "error": np.asarray(error, dtype=float)})
    bins = min(n_bins, max(1, len(frame) // 3))
    frame["bin"] = pd.qcut(frame["u"].rank(method="first"), bins, labels=False)
    return frame.groupby("bin").agg(
        u=("u", "mean"), error=("error", lambda e: float(np.sqrt(np.mean(e**2)))), n=("u", "size")
    )


def calibration_figure(
    table: pd.DataFrame, key: str, held: dict, decision: dict, out: Path
) -> None:
    metrics = [c for c in ("u_energy", "u_force_mean", "u_force_max") if c in table]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.8), squeeze=False)
    for ax, column in zip(axes[0], metrics, strict=True):
        error = error_for(column[2:])
        bins = binned(table[column], table[error])
        ax.scatter(table[column], table[error], s=6, color="lightgrey", label="frames")
        ax.plot(bins["u"], bins["error"], "o-", label="binned (RMS error)")
        if column == key and held.get("calibration"):
            fit = held["calibration"]
            x = np.linspace(0, float(table[column].max()) * 1.1, 50)
            ax.plot(x, fit["factor"] * x, "k:", label=f"fit: error = {fit['factor']:.2f} u")
        if column == key and held.get("error_target"):
            ax.axhline(held["error_target"], color="C3", lw=0.8, label="target")
            for name, style in (("threshold", "--"), ("threshold_calibrated", "-.")):
                quality = decision.get("thresholds", {}).get(name)
                if quality:
                    ax.axvline(quality["threshold"], color="C2", ls=style, lw=0.8,
                               label=f"{name.replace('_', ' ')}: P {fmt(quality['precision'])}, "
                               f"R {fmt(quality['recall'])}")  # fmt: skip
        ax.set_xlabel(f"uncertainty {column[2:]}")
        ax.set_ylabel(error.replace("_", " "))
        ax.legend(fontsize=6)
    fig.suptitle(f"Calibration on held-out frames ({held['source']}), iter {held['iteration']}")
    save(fig, out)


def exploration_figure(root: Path, iterations: list[int], key: str, out: Path) -> None:
    fig, axes = plt.subplots(
        len(iterations), 1, figsize=(8, 2.4 * len(iterations)), squeeze=False, sharex=True
    )
    for ax, n in zip(axes[:, 0], iterations, strict=True):
        table = pd.read_csv(layout.path(layout.CANDIDATES, root, iteration=n))
        chosen = set(table.loc[table["selected"], "al_id"])
        walkers = Path(root).glob(layout.WALKER.format(iteration=n, walker="*"))
        for path in sorted(walkers):
            frames = read_frames(path)
            time = [a.info["md_time_fs"] / 1000 for a in frames]
            u = [a.info[key] for a in frames]
            (line,) = ax.plot(time, u, lw=1, label=path.stem)
            picked = [(t, v) for t, v, a in zip(time, u, frames, strict=True)
                      if a.info["al_id"] in chosen]  # fmt: skip
            if picked:
                ax.plot(*zip(*picked, strict=True), "x", color=line.get_color(), ms=7)
        ax.set_ylabel(f"{key[2:]} (eV/Å)")
        ax.set_title(f"{iteration_name(n)} (x: selected)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("MD time (ps)")
    save(fig, out)


def bar_figure(table: pd.DataFrame, ylabel: str, title: str, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if table.empty:
        ax.text(0.5, 0.5, "no data", ha="center")
    else:
        table.plot(kind="bar", stacked=True, ax=ax, rot=0)
        ax.legend(fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    save(fig, out)
