"""The observables of MLIP MD in the status and the report: lines, a table, figures.

Per iteration and condition the verdicts written by the ``observables`` rule
(:mod:`almomd.stages.observables`): ``almomd status --json`` holds them under
``observables`` (per condition, per observable with ``agree``), the status table
adds a line per condition of the last iteration, and the report draws the
reference and every iteration's RDF, VDOS and MSD with their bands
(``rdf.png``, ``vdos.png``, ``msd.png``) and the sigma^A traces (``sigma_a.png``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from almomd import layout
from almomd.reporting.figures import iteration_name, save


def _files(root: Path | str, iteration: int, pattern: str) -> list[tuple[int, Path]]:
    place = layout.path(pattern, root, iteration=iteration, condition="*")
    found = []
    for path in sorted(place.parent.glob(place.name)):
        stem = path.stem.rsplit("_", 1)[-1]
        if stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


def observable_status(root: Path | str, iteration: int) -> dict[str, Any] | None:
    """The iteration's observables per condition (label), each observable with ``agree``;
    None where none were measured."""
    found = {}
    for _, path in _files(root, iteration, layout.OBSERVABLES):
        try:
            verdict = json.loads(path.read_text())
        except ValueError:
            continue
        rows = {k: v for k, v in verdict["observables"].items() if not k.startswith("_")}
        rows["protocol"] = verdict["observables"].get("_protocol", {})
        found[verdict["condition"]] = rows
    return found or None


def _word(agree: bool | None) -> str:
    return {True: "agrees", False: "DISAGREES", None: "no verdict"}[agree]


def _part(name: str, key: str, row: dict[str, Any]) -> str:
    if "distance" in row:
        return f"{key} {row['distance']:.3g} (tolerance {row['tolerance']:.3g})"
    if "ratio" in row and row["ratio"] is not None:
        return f"{key} {row['ratio']:.2f}x"
    value = row.get("value")
    return f"{key} {value:.3g}" if value is not None else key


def observable_lines(iteration: int, observed: dict[str, Any]) -> list[str]:
    """One line per condition: each observable's verdict and its distance or ratio."""
    lines = []
    for label, rows in observed.items():
        parts = []
        for name, row in rows.items():
            if name == "protocol":
                continue
            if name == "stability":
                drift = row["nve"]["drift"]
                first = row["first_event_fs"]
                event = "no event" if first is None else f"first event at {first:.0f} fs"
                drift_text = "-" if drift is None else f"{drift:.2g}"
                parts.append(
                    f"stability {'ok' if row['agree'] else 'FAILS'} ({event} in "
                    f"{row['trajectories']} x {row['ran_fs']:.0f} fs, NVE drift "
                    f"{drift_text} meV/atom/ps)"
                )
                continue
            details = ", ".join(_part(name, k, r) for k, r in row.get("parts", {}).items())
            parts.append(f"{name} {_word(row['agree'])}" + (f" ({details})" if details else ""))
        lines.append(f"observables of iteration {iteration} at {label}: " + "; ".join(parts))
    return lines


def observable_table(status: list[dict]) -> pd.DataFrame:
    """Per iteration, condition and observable: the verdict and its figure."""
    records = []
    for row in status:
        for label, rows in (row.get("observables") or {}).items():
            for name, verdict in rows.items():
                if name in ("protocol", "stability"):
                    continue
                for part, found in verdict.get("parts", {}).items():
                    records.append(
                        {
                            "iteration": row["iteration"],
                            "condition": label,
                            "observable": f"{name} {part}",
                            "value": found.get("value", found.get("distance")),
                            "reference / tolerance": found.get("reference", found.get("tolerance")),
                            "ratio": found.get("ratio"),
                            "agree": found.get("agree"),
                        }
                    )
            stable = rows.get("stability")
            if stable:
                records.append(
                    {
                        "iteration": row["iteration"],
                        "condition": label,
                        "observable": "stability",
                        "value": stable["first_event_fs"],
                        "reference / tolerance": stable["ran_fs"],
                        "ratio": stable["nve"]["drift"],
                        "agree": stable["agree"],
                    }
                )
    if not records:
        return pd.DataFrame()
    return pd.DataFrame(records).set_index(["iteration", "condition", "observable"])


def _curves(root: Path, iterations: list[int]) -> dict[int, dict[int, dict[str, np.ndarray]]]:
    """Per condition, per iteration: the curves the observables rule kept."""
    found: dict[int, dict[int, dict[str, np.ndarray]]] = {}
    for i in iterations:
        for condition, path in _files(root, i, layout.OBSERVABLE_CURVES):
            with np.load(path) as data:
                found.setdefault(condition, {})[i] = {k: data[k] for k in data.files}
    return found


def _labels(root: Path, iterations: list[int]) -> dict[int, str]:
    labels = {}
    for i in iterations:
        for condition, path in _files(root, i, layout.OBSERVABLES):
            try:
                labels[condition] = json.loads(path.read_text())["condition"]
            except ValueError:
                continue
    return labels


def _empty(out: Path, what: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.text(
        0.5,
        0.5,
        f"no {what}\n(observables.enabled: false, or none measured yet)",
        ha="center",
        va="center",
        transform=ax.transAxes,
    )
    ax.set_axis_off()
    save(fig, out)


def curve_figure(
    root: Path, iterations: list[int], kind: str, xlabel: str, ylabel: str, out: Path
) -> None:
    """Rows: conditions; columns: the kind's parts (pairs, elements). The reference in black
    with its band, every iteration coloured, the last with its combined band."""
    curves, labels = _curves(root, iterations), _labels(root, iterations)
    rows = sorted(curves)
    parts = sorted(
        {
            key.split("/")[1]
            for c in curves.values()
            for data in c.values()
            for key in data
            if key.startswith(kind + "/")
        }
    )
    if not rows or not parts:
        _empty(out, kind.upper())
        return
    fig, axes = plt.subplots(
        len(rows), len(parts), figsize=(3.6 * len(parts), 2.8 * len(rows)), squeeze=False
    )
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, max(len(iterations), 1)))
    for r, condition in enumerate(rows):
        by_iteration = curves[condition]
        last = max(by_iteration)
        for c, part in enumerate(parts):
            ax = axes[r, c]
            prefix = f"{kind}/{part}/"
            for n, i in enumerate(iterations):
                data = by_iteration.get(i, {})
                if prefix + "grid" not in data:
                    continue
                x, y = data[prefix + "grid"], data[prefix + "value"]
                ax.plot(x, y, color=colours[n], lw=1.0, label=iteration_name(i))
                if i == last:
                    band = 2.0 * data[prefix + "error"]
                    ax.fill_between(x, y - band, y + band, color=colours[n], alpha=0.25, lw=0)
            data = by_iteration[last]
            if prefix + "reference" in data:
                x, y = data[prefix + "grid"], data[prefix + "reference"]
                band = 2.0 * data[prefix + "reference_error"]
                ax.plot(x, y, "k--", lw=1.2, label="reference")
                ax.fill_between(x, y - band, y + band, color="0.5", alpha=0.25, lw=0)
            if kind == "vdos":  # up to where the spectra hold 99.5 % of their weight
                y = data.get(prefix + "reference", data[prefix + "value"])
                x = data[prefix + "grid"]
                weight = np.cumsum(y) / max(float(np.sum(y)), 1e-300)
                ax.set_xlim(0.0, float(x[min(np.searchsorted(weight, 0.995) + 1, len(x) - 1)]))
            ax.set_title(f"{labels.get(condition, condition)}: {part}", fontsize=9)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=7)
    save(fig, out)


def sigma_a_figure(root: Path, iterations: list[int], out: Path) -> None:
    """Per condition: sigma^A over time (the reference's trajectories in black, the last
    iteration's member trajectories coloured) and its distribution."""
    curves, labels = _curves(root, iterations), _labels(root, iterations)
    rows = [
        c
        for c in sorted(curves)
        if any(k.startswith("sigma_a/") for k in curves[c][max(curves[c])])
    ]
    if not rows:
        _empty(out, "sigma^A")
        return
    fig, axes = plt.subplots(len(rows), 2, figsize=(9, 2.8 * len(rows)), squeeze=False)
    for r, condition in enumerate(rows):
        last = max(curves[condition])
        data = curves[condition][last]
        for key in sorted(data):
            if not key.startswith("sigma_a/"):
                continue
            reference = "/reference/" in key
            style = {"color": "k", "lw": 1.0} if reference else {"lw": 0.8, "alpha": 0.7}
            axes[r, 0].plot(data[key], **style)
        ours = np.concatenate([v for k, v in data.items() if k.startswith("sigma_a/model/")])
        theirs = [v for k, v in data.items() if k.startswith("sigma_a/reference/")]
        bins = np.linspace(0, max([ours.max()] + [t.max() for t in theirs]) * 1.05, 30)
        axes[r, 1].hist(ours, bins=bins, alpha=0.6, density=True, label=iteration_name(last))
        if theirs:
            axes[r, 1].hist(
                np.concatenate(theirs),
                bins=bins,
                histtype="step",
                color="k",
                density=True,
                label="reference",
            )
        axes[r, 0].set_title(f"{labels.get(condition, condition)}: sigma^A per state", fontsize=9)
        axes[r, 0].set_xlabel("recorded MD step")
        axes[r, 0].set_ylabel("σ^A")
        axes[r, 1].set_xlabel("σ^A")
        axes[r, 1].legend(fontsize=7)
    save(fig, out)


def observable_figures(root: Path, iterations: list[int], out_dir: Path) -> None:
    """rdf.png, vdos.png, msd.png and sigma_a.png in ``out_dir``."""
    curve_figure(root, iterations, "rdf", "r (Å)", "g(r)", out_dir / "rdf.png")
    curve_figure(root, iterations, "vdos", "frequency (THz)", "VDOS (1/THz)", out_dir / "vdos.png")
    curve_figure(root, iterations, "msd", "lag (fs)", "MSD (Å²)", out_dir / "msd.png")
    sigma_a_figure(root, iterations, out_dir / "sigma_a.png")
