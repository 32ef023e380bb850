"""The campaign report: is active learning working, and where does the time go?

:func:`write_report` reads a campaign's ``results/`` and ``benchmarks/`` and
writes PNG figures plus one summary (Markdown and HTML) a person can open:

- ``learning_curve.png``: held-out force and energy RMSE (with their bootstrap
  intervals) and the test-set figures against the training-set size;
- ``parity.png``: the latest ensemble's energies and force components on the test set;
- ``uncertainty_error.png``: per held-out frame, uncertainty against true error,
  with Spearman's rank correlation, its interval and n (is the uncertainty worth anything?);
- ``calibration.png``: binned uncertainty against the observed error per metric,
  the calibration fit, the target and both thresholds (acceptance, calibrated);
- ``exploration.png``: uncertainty against MD time per walker and iteration,
  selected frames marked;
- ``acceptance.png``: what happened to the candidates of each iteration;
- ``timings.png``: wall time per stage and iteration from the benchmark files.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from almomd import layout  # noqa: E402
from almomd.costs import benchmark_seconds  # noqa: E402
from almomd.data import read_frames  # noqa: E402
from almomd.heldout import error_for  # noqa: E402
from almomd.status import KEYS, campaign_status, format_interval  # noqa: E402

FIGURES = (
    "learning_curve.png",
    "parity.png",
    "uncertainty_error.png",
    "calibration.png",
    "exploration.png",
    "acceptance.png",
    "timings.png",
    "systems.png",
)


def _iterations(root: Path) -> list[int]:
    """The evaluated iterations of the campaign in ``root``."""
    return [
        n
        for n in layout.iterations(root)
        if layout.path(layout.TEST_METRICS, root, iteration=n).is_file()
    ]


def _name(iteration: int) -> str:
    return f"iter_{iteration}"


def stage_timings(benchmarks: Path) -> pd.DataFrame:
    """Wall time (s) per stage and iteration: one row per benchmark file."""
    rows = []
    for path in sorted(benchmarks.glob("*/*.tsv")):
        stage = re.sub(r"(_\d+)+$", "", path.stem)
        seconds = benchmark_seconds(path)[-1]
        rows.append({"iteration": path.parent.name, "stage": stage, "seconds": seconds})
    return pd.DataFrame(rows, columns=["iteration", "stage", "seconds"])


def _learning_curve(status: list[dict], out: Path) -> None:
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
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def system_table(status: list[dict]) -> pd.DataFrame:
    """Each system's figures per iteration (rows: iteration, system)."""
    rows = [
        {"iteration": r["iteration"], "system": name} | figures
        for r in status
        for name, figures in (r["systems"] or {}).items()
    ]
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.set_index(["iteration", "system"])
    table["heldout_force_rmse_ci"] = [
        format_interval(v, 4, "n/a") for v in table["heldout_force_rmse_ci"]
    ]
    return table


def _systems(table: pd.DataFrame, out: Path) -> None:
    """Held-out force error and error/uncertainty per system over the iterations."""
    fig, (ax_f, ax_r) = plt.subplots(1, 2, figsize=(9, 3.6))
    if not table.empty:
        for name, group in table.groupby(level="system", sort=False):
            iterations = group.index.get_level_values("iteration")
            ax_f.plot(iterations, group["heldout_force_rmse"].astype(float), "o-", label=name)
            ax_r.plot(iterations, group["error_to_uncertainty"].astype(float), "o-", label=name)
        ax_f.legend(fontsize=7)
    ax_f.set_ylabel("held-out force RMSE (eV/Å)")
    ax_r.set_ylabel("error / RMS uncertainty")
    for ax in (ax_f, ax_r):
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("Per system (a higher error/uncertainty: the ensemble is overconfident there)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _parity(table: pd.DataFrame, forces: np.ndarray, iteration: str, out: Path) -> None:
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
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _uncertainty_error(table: pd.DataFrame, key: str, held: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.8, 4))
    error = error_for(key[2:])
    ax.scatter(table[key], table[error], s=10)
    ax.set_xlabel(f"ensemble uncertainty {key[2:]}")
    ax.set_ylabel(f"true {error.replace('_', ' ')} of the frame")
    rho = held["spearman"].get(key[2:], {})
    ax.set_title(
        f"iter {held['iteration']} ({held['source']}): Spearman ρ = {_num(rho.get('rho'))}\n"
        f"95% CI {_num(rho.get('low'))} to {_num(rho.get('high'))}, n = {rho.get('n')}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _num(value: Any) -> str:
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


def _calibration(table: pd.DataFrame, key: str, held: dict, decision: dict, out: Path) -> None:
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
                               label=f"{name.replace('_', ' ')}: P {_num(quality['precision'])}, "
                               f"R {_num(quality['recall'])}")  # fmt: skip
        ax.set_xlabel(f"uncertainty {column[2:]}")
        ax.set_ylabel(error.replace("_", " "))
        ax.legend(fontsize=6)
    fig.suptitle(f"Calibration on held-out frames ({held['source']}), iter {held['iteration']}")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def heldout_tables(root: Path, iterations: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spearman per metric (rho, interval, n) and threshold precision/recall per iteration."""
    rho_rows, threshold_rows = [], []
    for n in iterations:
        held = json.loads(layout.path(layout.HELDOUT_SUMMARY, root, iteration=n).read_text())
        row = {"iteration": _name(n), "source": held["source"]}
        for metric, value in held["spearman"].items():
            row[metric] = f"{_num(value['rho'])} [{_num(value['low'])}, {_num(value['high'])}]"
        row["n"] = held["n_frames"]
        rho_rows.append(row)
        decision_file = layout.path(layout.DECISION, root, iteration=n)
        decision = json.loads(decision_file.read_text()) if decision_file.is_file() else {}
        for name, quality in decision.get("thresholds", {}).items():
            threshold_rows.append({"iteration": _name(n), "rule": name, **quality})
    index = ["iteration"]
    return (
        pd.DataFrame(rho_rows).set_index(index) if rho_rows else pd.DataFrame(),
        pd.DataFrame(threshold_rows).set_index(index) if threshold_rows else pd.DataFrame(),
    )


def _exploration(root: Path, iterations: list[int], key: str, out: Path) -> None:
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
        ax.set_title(f"{_name(n)} (x: selected)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("MD time (ps)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def acceptance_counts(root: Path, iterations: list[int]) -> pd.DataFrame:
    """Candidates per decision (rows: iterations)."""
    counts = {
        _name(n): pd.read_csv(layout.path(layout.CANDIDATES, root, iteration=n))[
            "decision"
        ].value_counts()
        for n in iterations
    }
    return pd.DataFrame(counts).T.fillna(0).astype(int)


def _bars(table: pd.DataFrame, ylabel: str, title: str, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if table.empty:
        ax.text(0.5, 0.5, "no data", ha="center")
    else:
        table.plot(kind="bar", stacked=True, ax=ax, rot=0)
        ax.legend(fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in [table.index.name or "", *table.columns]) + " |"
    lines = [header, "|" + "---|" * (len(table.columns) + 1)]
    for index, row in table.iterrows():
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join([str(index), *cells]) + " |")
    return "\n".join(lines)


def write_report(workdir: Path | str, uncertainty_key: str, out_dir: Path | str) -> dict:
    """Write the figures and ``report.md``/``report.html`` into ``out_dir``.

    ``uncertainty_key`` is the selection metric column, e.g. ``u_force_max``.
    Returns the numbers of the summary (also written as ``report.json``).
    """
    workdir, out_dir = Path(workdir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    iterations = _iterations(workdir)
    if not iterations:
        raise FileNotFoundError(
            f"no evaluated iteration under {layout.path(layout.RESULTS, workdir)}"
        )
    status = campaign_status(workdir)
    latest = iterations[-1]

    def at(pattern: str) -> Path:
        return layout.path(pattern, workdir, iteration=latest)

    table = pd.read_csv(at(layout.TEST_TABLE))
    forces = np.loadtxt(at(layout.TEST_FORCES), ndmin=2)
    held = json.loads(at(layout.HELDOUT_SUMMARY).read_text())
    held_table = pd.read_csv(at(layout.HELDOUT_TABLE))
    decision_file = at(layout.DECISION)
    decision = json.loads(decision_file.read_text()) if decision_file.is_file() else {}
    _learning_curve(status, out_dir / "learning_curve.png")
    _parity(table, forces, _name(latest), out_dir / "parity.png")
    _uncertainty_error(held_table, uncertainty_key, held, out_dir / "uncertainty_error.png")
    _calibration(held_table, uncertainty_key, held, decision, out_dir / "calibration.png")
    rho_table, threshold_table = heldout_tables(workdir, iterations)
    _exploration(workdir, iterations, uncertainty_key, out_dir / "exploration.png")
    acceptance = acceptance_counts(workdir, iterations)
    _bars(acceptance, "candidates", "Selection decisions", out_dir / "acceptance.png")
    timings = stage_timings(workdir / layout.BENCHMARKS)
    per_stage = timings.pivot_table(
        index="iteration", columns="stage", values="seconds", aggfunc="sum", fill_value=0.0
    )
    _bars(per_stage, "wall time, summed over jobs (s)", "Time per stage", out_dir / "timings.png")

    per_system = system_table(status)
    _systems(per_system, out_dir / "systems.png")
    overview = pd.DataFrame(status).set_index("iteration")
    columns = [key for key in KEYS if key not in ("iteration", "reason", "systems")]
    overview = overview[columns]
    for key in ("heldout_force_rmse_ci",):  # an interval reads as "low-high"
        overview[key] = [format_interval(v, 4, "n/a") for v in overview[key]]
    rho = held["spearman"].get(uncertainty_key[2:], {})
    summary = {
        "iterations": len(iterations),
        "labels_used": int(overview["n_train"].iloc[-1]),
        "final_force_rmse": float(overview["test_force_rmse"].iloc[-1]),
        "heldout_source": held["source"],
        "heldout_covers_conditions": held["covers_conditions"],
        "heldout_n": held["n_frames"],
        "final_heldout_force_rmse": held["force_rmse"],
        "final_heldout_force_rmse_ci": held["force_rmse_ci"],
        "spearman_latest": rho.get("rho"),
        "spearman_latest_ci": [rho.get("low"), rho.get("high")],
        "reason": status[-1]["reason"],
    }
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    sections = [
        ("Iterations", overview, "learning_curve.png"),
        ("Test set of the latest ensemble", None, "parity.png"),
        ("Uncertainty against true error (held-out frames)", rho_table, "uncertainty_error.png"),
        (
            "Calibration and thresholds: precision (P) and recall (R) of flagging frames whose "
            "true error exceeds the target",
            threshold_table,
            "calibration.png",
        ),
        ("Exploration", None, "exploration.png"),
        ("Selection decisions", acceptance, "acceptance.png"),
        ("Wall time per stage (s)", per_stage.round(1), "timings.png"),
        ("Per system: selection and held-out errors", per_system, "systems.png"),
    ]
    covered = (
        "" if held["covers_conditions"] else " (does NOT represent the exploration conditions)"
    )
    where = f"Held-out frames: {held['source']}, n = {held['n_frames']}{covered}."
    lines = ["# almomd campaign report", "", f"Status: {summary['reason']}", "", where, ""]
    page = [
        "<html><head><meta charset='utf-8'><title>almomd report</title></head><body>",
        "<h1>almomd campaign report</h1>",
        f"<p>Status: {html.escape(summary['reason'])}</p>",
        f"<p>{html.escape(where)}</p>",
    ]
    for title, frame, figure in sections:
        lines += [f"## {title}", ""]
        page.append(f"<h2>{html.escape(title)}</h2>")
        if frame is not None and not frame.empty:
            lines += [_markdown_table(frame), ""]
            page.append(frame.to_html(float_format=lambda v: f"{v:.4g}"))
        lines += [f"![{title}]({figure})", ""]
        page.append(f"<p><img src='{figure}' alt='{html.escape(title)}'></p>")
    page.append("</body></html>")
    (out_dir / "report.md").write_text("\n".join(lines))
    (out_dir / "report.html").write_text("\n".join(page) + "\n")
    return summary
