"""The campaign report: is active learning working, and where does the time go?

:func:`write_report` reads a campaign's ``results/`` and ``benchmarks/`` and
writes PNG figures plus one summary (Markdown and HTML) a person can open:

- ``learning_curve.png``: test energy and force RMSE against the training-set size;
- ``parity.png``: the latest ensemble's energies and force components on the test set;
- ``uncertainty_error.png``: per test frame, uncertainty against true force error,
  with Spearman's rank correlation (is the uncertainty worth anything?);
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

from almomd.data import read_frames  # noqa: E402
from almomd.status import KEYS, campaign_status  # noqa: E402

FIGURES = (
    "learning_curve.png",
    "parity.png",
    "uncertainty_error.png",
    "exploration.png",
    "acceptance.png",
    "timings.png",
)


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation (Pearson's of the ranks, ties averaged)."""
    x, y = pd.Series(np.asarray(x, dtype=float)), pd.Series(np.asarray(y, dtype=float))
    if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
        return float("nan")
    return float(x.rank().corr(y.rank()))


def _iterations(results: Path) -> list[Path]:
    dirs = [d for d in results.glob("iter_*") if (d / "eval" / "metrics.json").is_file()]
    return sorted(dirs, key=lambda d: int(d.name.split("_")[1]))


def stage_timings(benchmarks: Path) -> pd.DataFrame:
    """Wall time (s) per stage and iteration: one row per benchmark file."""
    rows = []
    for path in sorted(benchmarks.glob("*/*.tsv")):
        stage = re.sub(r"(_\d+)+$", "", path.stem)
        seconds = float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
        rows.append({"iteration": path.parent.name, "stage": stage, "seconds": seconds})
    return pd.DataFrame(rows, columns=["iteration", "stage", "seconds"])


def _learning_curve(status: list[dict], out: Path) -> None:
    fig, (ax_f, ax_e) = plt.subplots(1, 2, figsize=(9, 3.6))
    n = [row["n_train"] for row in status]
    ax_f.plot(n, [row["test_force_rmse"] for row in status], "o-")
    ax_e.plot(n, [row["test_energy_rmse"] for row in status], "o-", color="C1")
    for ax, label in ((ax_f, "test force RMSE (eV/Å)"), (ax_e, "test energy RMSE (eV/atom)")):
        ax.set_xlabel("labeled training frames")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        for row in status:
            ax.annotate(f"it{row['iteration']}", (row["n_train"], ax.get_ylim()[0]), fontsize=7)
    fig.suptitle("Learning curve")
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


def _uncertainty_error(
    table: pd.DataFrame, key: str, iteration: str, rho: float, out: Path
) -> None:
    fig, ax = plt.subplots(figsize=(4.8, 4))
    ax.scatter(table[key], table["force_rmse"], s=10)
    ax.set_xlabel(f"ensemble uncertainty {key[2:]} (eV/Å)")
    ax.set_ylabel("true force RMSE of the frame (eV/Å)")
    ax.set_title(f"{iteration}: Spearman ρ = {rho:.2f}")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _exploration(iterations: list[Path], key: str, out: Path) -> None:
    fig, axes = plt.subplots(
        len(iterations), 1, figsize=(8, 2.4 * len(iterations)), squeeze=False, sharex=True
    )
    for ax, directory in zip(axes[:, 0], iterations, strict=True):
        table = pd.read_csv(directory / "selection" / "candidates.csv")
        chosen = set(table.loc[table["selected"], "al_id"])
        for path in sorted((directory / "explore").glob("walker_*.extxyz")):
            frames = read_frames(path)
            time = [a.info["md_time_fs"] / 1000 for a in frames]
            u = [a.info[key] for a in frames]
            (line,) = ax.plot(time, u, lw=1, label=path.stem)
            picked = [(t, v) for t, v, a in zip(time, u, frames, strict=True)
                      if a.info["al_id"] in chosen]  # fmt: skip
            if picked:
                ax.plot(*zip(*picked, strict=True), "x", color=line.get_color(), ms=7)
        ax.set_ylabel(f"{key[2:]} (eV/Å)")
        ax.set_title(f"{directory.name} (x: selected)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("MD time (ps)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def acceptance_counts(iterations: list[Path]) -> pd.DataFrame:
    """Candidates per decision (rows: iterations)."""
    counts = {
        d.name: pd.read_csv(d / "selection" / "candidates.csv")["decision"].value_counts()
        for d in iterations
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
    results = workdir / "results"
    iterations = _iterations(results)
    if not iterations:
        raise FileNotFoundError(f"no evaluated iteration under {results}")
    status = campaign_status(results)
    latest = iterations[-1]
    tables = {d.name: pd.read_csv(d / "eval" / "test_predictions.csv") for d in iterations}
    table = tables[latest.name]
    forces = np.loadtxt(latest / "eval" / "test_forces.txt", ndmin=2)
    _learning_curve(status, out_dir / "learning_curve.png")
    _parity(table, forces, latest.name, out_dir / "parity.png")
    rho = {name: spearman(t[uncertainty_key], t["force_rmse"]) for name, t in tables.items()}
    _uncertainty_error(
        table, uncertainty_key, latest.name, rho[latest.name], out_dir / "uncertainty_error.png"
    )
    _exploration(iterations, uncertainty_key, out_dir / "exploration.png")
    acceptance = acceptance_counts(iterations)
    _bars(acceptance, "candidates", "Selection decisions", out_dir / "acceptance.png")
    timings = stage_timings(workdir / "benchmarks")
    per_stage = timings.pivot_table(
        index="iteration", columns="stage", values="seconds", aggfunc="sum", fill_value=0.0
    )
    _bars(per_stage, "wall time, summed over jobs (s)", "Time per stage", out_dir / "timings.png")

    overview = pd.DataFrame(status).set_index("iteration")
    columns = [key for key in KEYS if key not in ("iteration", "reason")]
    overview = overview[columns]
    overview["spearman_u_error"] = [rho.get(f"iter_{i}", np.nan) for i in overview.index]
    summary = {
        "iterations": len(iterations),
        "labels_used": int(overview["n_train"].iloc[-1]),
        "final_force_rmse": float(overview["test_force_rmse"].iloc[-1]),
        "spearman_latest": rho[latest.name],
        "reason": status[-1]["reason"],
    }
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    sections = [
        ("Iterations", overview, "learning_curve.png"),
        ("Test set of the latest ensemble", None, "parity.png"),
        ("Uncertainty against true error (per test frame)", None, "uncertainty_error.png"),
        ("Exploration", None, "exploration.png"),
        ("Selection decisions", acceptance, "acceptance.png"),
        ("Wall time per stage (s)", per_stage.round(1), "timings.png"),
    ]
    lines = ["# almomd campaign report", "", f"Status: {summary['reason']}", ""]
    page = [
        "<html><head><meta charset='utf-8'><title>almomd report</title></head><body>",
        "<h1>almomd campaign report</h1>",
        f"<p>Status: {html.escape(summary['reason'])}</p>",
    ]
    for title, frame, figure in sections:
        lines += [f"## {title}", ""]
        page.append(f"<h2>{html.escape(title)}</h2>")
        if frame is not None:
            lines += [_markdown_table(frame), ""]
            page.append(frame.to_html(float_format=lambda v: f"{v:.4g}"))
        lines += [f"![{title}]({figure})", ""]
        page.append(f"<p><img src='{figure}' alt='{html.escape(title)}'></p>")
    page.append("</body></html>")
    (out_dir / "report.md").write_text("\n".join(lines))
    (out_dir / "report.html").write_text("\n".join(page) + "\n")
    return summary
