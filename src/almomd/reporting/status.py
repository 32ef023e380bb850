"""The campaign's status, read from the files of a results directory."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from almomd import layout, lineage
from almomd.data.frames import read_frames
from almomd.evaluation.convergence import redecided
from almomd.evaluation.heldout import status_figures
from almomd.reporting.observables import observable_lines, observable_status

KEYS = (
    "iteration",
    "n_train",
    "n_candidates",
    "n_selected",
    "n_labeled",
    "n_failed",
    "test_energy_rmse",
    "test_force_rmse",
    "mean_force_uncertainty",
    "n_audit",
    "heldout_source",
    "heldout_covers_conditions",
    "heldout_n",
    "heldout_n_eff",
    "heldout_force_rmse",
    "heldout_force_rmse_ci",
    "heldout_energy_rmse",
    "spearman_heldout",
    "uncertain_fraction",
    "converged",
    "reason",
    "systems",
    "error_model",
    "observables",
)

#: Per-system figures under ``systems`` (keyed by system name) of each iteration.
SYSTEM_KEYS = (
    "n_candidates",
    "n_selected",
    "n_audit",
    "threshold",
    "calibration_scope",
    "uncertain_fraction",
    "heldout_n",
    "heldout_n_eff",
    "heldout_force_rmse",
    "heldout_force_rmse_ci",
    "heldout_energy_rmse",
    "spearman_heldout",
    "error_to_uncertainty",
    "overconfidence",
    "novelty_heldout",
)


def system_figures(
    selection: dict[str, Any] | None, heldout: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Each system's figures of one iteration, from its selection and held-out summaries."""
    chosen = (selection or {}).get("per_system", {})
    held = (heldout or {}).get("per_system", {})
    figures = {}
    for name in dict.fromkeys([*chosen, *held]):
        row = dict.fromkeys(SYSTEM_KEYS)
        row |= {k: v for k, v in chosen.get(name, {}).items() if k in SYSTEM_KEYS}
        if name in held:
            h = held[name]
            row |= {
                "heldout_n": h["n_frames"],
                "heldout_n_eff": h.get("n_eff"),
                "heldout_force_rmse": h["force_rmse"],
                "heldout_force_rmse_ci": h["force_rmse_ci"],
                "heldout_energy_rmse": h["energy_rmse"],
                "spearman_heldout": h["spearman"].get("rho"),
                "error_to_uncertainty": h["error_to_uncertainty"],
                "overconfidence": h.get("overconfidence"),  # older summaries lack the two
                "novelty_heldout": h.get("novelty"),
            }
        figures[name] = row
    return figures


def error_model_figures(novelty_file: Path) -> dict[str, Any] | None:
    """The iteration's uncertainty error model and how it fits its held-out atoms
    (:meth:`almomd.ensemble.error_model.ErrorModel.summary`); None without one."""
    from almomd.ensemble.novelty import fitted_atoms, stored_error_model

    if not novelty_file.is_file():
        return None
    model = stored_error_model(novelty_file)
    atoms = fitted_atoms(novelty_file)
    if model is None or atoms is None:
        return None
    return model.summary(atoms)


def _count(path: Path) -> int | None:
    return len(read_frames(path)) if path.exists() else None


def _count_all(paths: list[Path]) -> int | None:
    return sum(len(read_frames(p)) for p in paths) if paths else None


def iteration_status(root: Path | str, iteration: int) -> dict[str, Any]:
    """Status of one iteration of the campaign in ``root``; values not yet computed are ``None``."""

    def at(pattern: str) -> Path:
        return layout.path(pattern, root, iteration=iteration)

    row: dict[str, Any] = dict.fromkeys(KEYS)
    row["iteration"] = iteration
    row["n_train"] = _count(at(layout.TRAIN))
    table = at(layout.CANDIDATES)
    if table.exists() and table.stat().st_size:
        candidates = pd.read_csv(table)
        row["n_candidates"] = len(candidates)
        row["n_selected"] = int(candidates["selected"].sum()) if len(candidates) else 0
    row["n_labeled"] = _count_all(layout.batch_files(layout.LABELED, root, iteration))
    row["n_failed"] = _count_all(layout.batch_files(layout.FAILED, root, iteration))
    metrics_file = at(layout.TEST_METRICS)
    if metrics_file.exists():
        metrics = json.loads(metrics_file.read_text())
        row["test_energy_rmse"] = metrics["energy_rmse"]
        row["test_force_rmse"] = metrics["force_rmse"]
        row["mean_force_uncertainty"] = metrics["mean_u_force_mean"]
    heldout_file = at(layout.HELDOUT_SUMMARY)
    held = json.loads(heldout_file.read_text()) if heldout_file.exists() else None
    if held:
        figures = status_figures(held)
        row |= {key: value for key, value in figures.items() if key in KEYS}
    summary_file = at(layout.SELECTION_SUMMARY)
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    if summary:
        row["n_audit"] = summary["n_audit"]
        row["uncertain_fraction"] = summary["uncertain_fraction"]
    row["systems"] = system_figures(summary, held)
    row["error_model"] = error_model_figures(at(layout.NOVELTY))
    row["observables"] = observable_status(root, iteration)
    decision_file = layout.current_decision(root, iteration)
    if decision_file.exists():
        decision = json.loads(decision_file.read_text())
        row["converged"] = decision["converged"]
        row["reason"] = decision["reason"]
        if decision["stop"]:
            row["n_labeled"] = row["n_labeled"] or 0
            row["n_failed"] = row["n_failed"] or 0
    return row


def campaign_status(root: Path | str = ".") -> list[dict[str, Any]]:
    """Status of every iteration of the campaign in directory ``root``, in order."""
    return [iteration_status(root, i) for i in layout.iterations(root)]


@dataclass(frozen=True)
class CampaignState:
    """Whether a campaign is finished, going on or damaged, in words, from its own files."""

    text: str
    damaged: bool = False


def campaign_state(
    root: Path | str, rows: list[dict[str, Any]], config: dict[str, Any] | None = None
) -> CampaignState:
    """The state of the campaign in ``root`` from its iterations' files (``rows``: its status).

    Finished only where every iteration up to one that decided to stop has its
    decision, and (given the campaign's ``config``) the stop rules it decided
    under are still those of the config; damaged where results were made from
    files that are gone or cut short (:mod:`almomd.lineage`, with the way back).
    """
    root = Path(root)
    per_iteration = [
        (len(list(root.glob(layout.WALKER.format(iteration=i, walker="*")))),
         len(layout.batch_files(layout.LABELED, root, i)))
        for i in layout.iterations(root)
    ]  # fmt: skip
    n_walkers = max((w for w, _ in per_iteration), default=0)
    n_batches = max((b for _, b in per_iteration), default=0)
    generated = (root / layout.INITIAL_CANDIDATES).is_file()
    found = lineage.damage(root, n_walkers, n_batches, generated)
    if found:
        return CampaignState("DAMAGED: " + lineage.advice(found), damaged=True)
    if not rows:
        stopped = stopped_steps(root)
        if stopped:
            return CampaignState("not started: a step before the first iteration failed: "
                                 + "; ".join(stopped))  # fmt: skip
        return CampaignState("not started (no iteration yet): run snakemake")
    following = 0  # the first iteration without a decision
    begun = {row["iteration"] for row in rows}
    for row in rows:
        path = layout.current_decision(root, row["iteration"])
        if row["iteration"] != following or not path.is_file():
            break
        decision = json.loads(path.read_text())
        changes = redecided(decision, following + 1 in begun, config) if config else []
        if changes:
            return CampaignState(
                f"not finished: the stop rules changed since iteration {following} was "
                f"decided ({'; '.join(changes)}): snakemake decides it again, and goes on "
                "if they say so"
            )
        if decision["stop"]:
            return CampaignState(f"finished at iteration {following}")
        following += 1
    return CampaignState(
        f"not finished: iteration {following} runs next (snakemake goes on from there)"
    )


#: steps before the first iteration that label: (log, the output it writes), by wildcard
_LABELING_STEPS = (
    (layout.log("labeler_check", "initial"), layout.LABELER_CHECK),
    (layout.log("label_{batch}", "initial"), layout.INITIAL_LABELED),
    (layout.log("datasets", "initial"), layout.TRAIN.format(iteration=0)),
    (layout.log("reference_{condition}", "heldout"), layout.REFERENCE_MD),
)
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failed)\b.*")


def stopped_steps(root: Path | str) -> list[str]:
    """Why a step before the first iteration failed: the error of each whose log ends
    in one and whose output is missing (the labeler's check, initial labels, data sets,
    reference MD)."""
    root = Path(root)
    found = []
    for log_pattern, output in _LABELING_STEPS:
        # the log's wildcards (a batch, a condition) name its output
        named = re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>\\d+)", re.escape(log_pattern)))
        for log_file in sorted(root.glob(re.sub(r"\{\w+\}", "*", log_pattern))):
            values = named.fullmatch(log_file.relative_to(root).as_posix())
            if values is None or (root / output.format(**values.groupdict())).is_file():
                continue
            lines = log_file.read_text().splitlines()
            errors = [m.group(0) for m in map(_ERROR_LINE.match, lines) if m]
            if errors:
                found.append(f"{log_file.relative_to(root)}: {errors[-1][:400]}")
    return found


def labeling_notes(root: Path | str) -> list[str]:
    """What the labeler failed on outside the iterations: the initial frames it could not
    label (with the commonest reasons) and the reference MD steps it redid."""
    root = Path(root)
    notes = []
    failed = [
        a
        for f in sorted(root.glob(layout.INITIAL_FAILED.format(batch="*")))
        for a in read_frames(f)
    ]
    if failed:
        sent = root / layout.INITIAL_CANDIDATES
        total = f" of {len(read_frames(sent))}" if sent.is_file() else ""
        reasons = Counter(str(a.info.get("fail_reason")) for a in failed)
        common = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(2))
        notes.append(f"initial data: {len(failed)}{total} frames failed to label ({common})")
    for path in sorted(root.glob(layout.REFERENCE_MD.format(condition="*"))):
        frames = read_frames(path)
        redone: dict[str, int] = {}
        for atoms in frames:
            trajectory = str(atoms.info.get("al_trajectory"))
            redone[trajectory] = max(
                redone.get(trajectory, 0), int(atoms.info.get("al_redone_steps", 0))
            )
        if sum(redone.values()):
            condition = frames[0].info.get("al_condition", path.stem) if frames else path.stem
            notes.append(
                f"reference MD {condition}: {sum(redone.values())} steps the labeler failed "
                f"were redone ({path.relative_to(root)})"
            )
    return notes


def write_status(root: Path | str, out: Path | str) -> None:
    """Write the status of the campaign in ``root`` as JSON to ``out``."""
    Path(out).write_text(json.dumps(campaign_status(root), indent=2) + "\n")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def format_interval(value: Any, digits: int = 3, missing: str = "-") -> str:
    """An interval ``[low, high]`` as ``low-high`` (``missing`` if absent)."""
    if not isinstance(value, list | tuple) or any(v is None for v in value):
        return missing
    return f"{value[0]:.{digits}g}-{value[1]:.{digits}g}"


#: Columns of the status table: header and how a row's cell is written.
COLUMNS: tuple[tuple[str, Any], ...] = (
    ("iter", lambda r: _fmt(r["iteration"])),
    ("train", lambda r: _fmt(r["n_train"])),
    ("explored", lambda r: _fmt(r["n_candidates"])),
    ("selected", lambda r: _fmt(r["n_selected"])),
    ("audit", lambda r: _fmt(r["n_audit"])),
    ("labeled", lambda r: _fmt(r["n_labeled"])),
    ("failed", lambda r: _fmt(r["n_failed"])),
    ("test F", lambda r: _fmt(r["test_force_rmse"])),
    ("held-out F eV/A", lambda r: _fmt(r["heldout_force_rmse"])),
    ("95% CI", lambda r: format_interval(r["heldout_force_rmse_ci"])),
    ("n", lambda r: _fmt(r["heldout_n"])),
    ("n_eff", lambda r: _fmt(r["heldout_n_eff"], 3)),
    ("held-out E eV/at", lambda r: _fmt(r["heldout_energy_rmse"])),
    ("rho(u,err)", lambda r: _fmt(r["spearman_heldout"], 2)),
    ("uncertain", lambda r: _fmt(r["uncertain_fraction"], 2)),
    ("converged", lambda r: _fmt(r["converged"])),
)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Human-readable table of the campaign status."""
    headers = [h for h, _ in COLUMNS]
    body = [[cell(row) for _, cell in COLUMNS] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    sources = {
        (r["heldout_source"], r["heldout_covers_conditions"]) for r in rows if r["heldout_source"]
    }
    for source, covers in sorted(sources):
        note = "" if covers else ": does NOT represent the exploration conditions"
        lines.append(f"held-out frames: {source}{note}")
    for row in rows:
        if len(row["systems"] or {}) > 1:
            lines += [f"iteration {row['iteration']}, {line}" for line in _system_lines(row)]
    modelled = [r for r in rows if r.get("error_model")]
    if modelled:
        lines += error_model_lines(modelled[-1]["iteration"], modelled[-1]["error_model"])
    observed = [r for r in rows if r.get("observables")]
    if observed:
        lines += observable_lines(observed[-1]["iteration"], observed[-1]["observables"])
    for row in rows:
        if row["reason"]:
            lines.append(f"iteration {row['iteration']}: {row['reason']}")
    if not rows:
        lines.append("no iteration found (has the workflow run in this directory?)")
    return "\n".join(lines)


def _system_lines(row: dict[str, Any]) -> list[str]:
    return [
        f"system {name}: selected {_fmt(f['n_selected'])} of {_fmt(f['n_candidates'])}, "
        f"threshold {_fmt(f['threshold'])} ({_fmt(f['calibration_scope'])}), held-out F "
        f"{_fmt(f['heldout_force_rmse'])} eV/A "
        f"(95% CI {format_interval(f['heldout_force_rmse_ci'])}, n={_fmt(f['heldout_n'])}, "
        f"n_eff={_fmt(f['heldout_n_eff'], 3)}), "
        f"error/uncertainty {_fmt(f['error_to_uncertainty'], 3)} "
        f"({_fmt(f['overconfidence'], 3)}x all frames'), novelty {_fmt(f['novelty_heldout'], 3)}"
        for name, f in row["systems"].items()
    ]


def error_model_lines(iteration: int, model: dict[str, Any]) -> list[str]:
    """How the uncertainty was tuned: the error model and its fit, pooled and per system."""

    def fit(f: dict[str, Any]) -> str:
        rho = {name: _fmt(value, 2) for name, value in f["spearman"].items()}
        return (
            f"{f['n_atoms']} atoms, force RMSE {_fmt(f['rmse'])} (predicted "
            f"{_fmt(f['rmse_predicted'])}), Spearman per atom {rho['predicted']} (spread "
            f"{rho['sigma']}, novelty {rho['novelty']}), novelty up to {_fmt(f['novelty_max'], 3)}"
        )

    lines = [
        f"uncertainty error model of iteration {iteration}: e_i^2 = ({_fmt(model['spread'], 3)} "
        f"sigma_i)^2 + ({_fmt(model['novelty'], 3)} nu_i)^2 (eV/A), fitted on the held-out "
        f"{fit(model)}; beyond that novelty it is extrapolated linearly"
    ]
    if len(model["per_system"]) > 1:
        lines += [f"  system {name}: {fit(f)}" for name, f in model["per_system"].items()]
    return lines
