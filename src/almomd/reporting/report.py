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
- ``timings.png``: wall time per stage and iteration from the benchmark files."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from almomd import layout
from almomd.ensemble.novelty import fitted_atoms, stored_error_model
from almomd.planning.measured import benchmark_seconds
from almomd.reporting.figures import (
    bar_figure,
    calibration_figure,
    error_model_figure,
    exploration_figure,
    fmt,
    iteration_name,
    learning_curve_figure,
    parity_figure,
    systems_figure,
    uncertainty_error_figure,
)
from almomd.reporting.observables import observable_figures, observable_table
from almomd.reporting.status import KEYS, campaign_status, format_interval


def _iterations(root: Path) -> list[int]:
    """The evaluated iterations of the campaign in ``root``."""
    return [
        n
        for n in layout.iterations(root)
        if layout.path(layout.TEST_METRICS, root, iteration=n).is_file()
    ]


def stage_timings(benchmarks: Path) -> pd.DataFrame:
    """Wall time (s) per stage and iteration: one row per benchmark file."""
    rows = []
    for path in sorted(benchmarks.glob("*/*.tsv")):
        stage = re.sub(r"(_\d+)+$", "", path.stem)
        seconds = benchmark_seconds(path)[-1]
        rows.append({"iteration": path.parent.name, "stage": stage, "seconds": seconds})
    return pd.DataFrame(rows, columns=["iteration", "stage", "seconds"])


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


def heldout_tables(root: Path, iterations: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spearman per metric (rho, interval, n) and threshold precision/recall per iteration."""
    rho_rows, threshold_rows = [], []
    for n in iterations:
        held = json.loads(layout.path(layout.HELDOUT_SUMMARY, root, iteration=n).read_text())
        row = {"iteration": iteration_name(n), "source": held["source"]}
        for metric, value in held["spearman"].items():
            row[metric] = f"{fmt(value['rho'])} [{fmt(value['low'])}, {fmt(value['high'])}]"
        row["n"] = held["n_frames"]
        rho_rows.append(row)
        decision_file = layout.current_decision(root, n)
        decision = json.loads(decision_file.read_text()) if decision_file.is_file() else {}
        for name, quality in decision.get("thresholds", {}).items():
            threshold_rows.append({"iteration": iteration_name(n), "rule": name, **quality})
    index = ["iteration"]
    return (
        pd.DataFrame(rho_rows).set_index(index) if rho_rows else pd.DataFrame(),
        pd.DataFrame(threshold_rows).set_index(index) if threshold_rows else pd.DataFrame(),
    )


def error_model_table(status: list[dict]) -> pd.DataFrame:
    """Per iteration and system: the error model's coefficients and fit."""
    rows = []
    for row in status:
        model = row.get("error_model")
        if not model:
            continue
        for name, f in {"all": model, **model["per_system"]}.items():
            rows.append({
                "iteration": row["iteration"], "system": name, "a (spread)": model["spread"],
                "b (novelty)": model["novelty"], "atoms": f["n_atoms"], "force RMSE": f["rmse"],
                "predicted": f["rmse_predicted"], "novelty max": f["novelty_max"],
                "Spearman per atom": f["spearman"]["predicted"],
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["iteration", "system"]) if rows else pd.DataFrame()


def acceptance_counts(root: Path, iterations: list[int]) -> pd.DataFrame:
    """Candidates per decision (rows: iterations)."""
    counts = {
        iteration_name(n): pd.read_csv(layout.path(layout.CANDIDATES, root, iteration=n))[
            "decision"
        ].value_counts()
        for n in iterations
    }
    return pd.DataFrame(counts).T.fillna(0).astype(int)


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
    decision_file = layout.current_decision(workdir, latest)
    decision = json.loads(decision_file.read_text()) if decision_file.is_file() else {}
    learning_curve_figure(status, out_dir / "learning_curve.png")
    parity_figure(table, forces, iteration_name(latest), out_dir / "parity.png")
    uncertainty_error_figure(held_table, uncertainty_key, held, out_dir / "uncertainty_error.png")
    calibration_figure(held_table, uncertainty_key, held, decision, out_dir / "calibration.png")
    rho_table, threshold_table = heldout_tables(workdir, iterations)
    exploration_figure(workdir, iterations, uncertainty_key, out_dir / "exploration.png")
    acceptance = acceptance_counts(workdir, iterations)
    bar_figure(acceptance, "candidates", "Selection decisions", out_dir / "acceptance.png")
    timings = stage_timings(workdir / layout.BENCHMARKS)
    per_stage = timings.pivot_table(
        index="iteration", columns="stage", values="seconds", aggfunc="sum", fill_value=0.0
    )
    bar_figure(
        per_stage, "wall time, summed over jobs (s)", "Time per stage", out_dir / "timings.png"
    )

    per_system = system_table(status)
    systems_figure(per_system, out_dir / "systems.png")
    modelled = [r["iteration"] for r in status if r.get("error_model")]
    novelty_file = layout.path(layout.NOVELTY, workdir, iteration=modelled[-1] if modelled else 0)
    error_model_figure(
        fitted_atoms(novelty_file) if modelled else None,
        stored_error_model(novelty_file) if modelled else None,
        modelled[-1] if modelled else latest,
        out_dir / "error_model.png",
    )
    error_models = error_model_table(status)
    overview = pd.DataFrame(status).set_index("iteration")
    observables = observable_table(status)
    observable_figures(workdir, iterations, out_dir)
    nested = ("iteration", "reason", "systems", "error_model", "observables")
    columns = [key for key in KEYS if key not in nested]
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
        "heldout_n_eff": held.get("n_eff"),
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
        (
            "How the uncertainty was tuned: the error model of the spread and the novelty, "
            "fitted per atom on the held-out frames",
            error_models,
            "error_model.png",
        ),
        (
            "Dynamics: MLIP MD against the reference dynamics, per condition (curves: value, "
            "distance or ratio, agreement within the combined 95% interval); RDF",
            observables,
            "rdf.png",
        ),
        ("Vibrational density of states", None, "vdos.png"),
        ("Mean squared displacement", None, "msd.png"),
        ("Anharmonicity sigma^A (Knoop et al. 2020)", None, "sigma_a.png"),
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
