"""The steps that train, run and judge the ensemble, and decide whether to go on.

Each function is one workflow step, named as its rule and its script; see
:mod:`almomd.stages`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pandas as pd
from ase import Atoms

from almomd import convergence, data, heldout, selection, statistics, systems, training
from almomd.config import (
    from_section,
    job_device,
    member_architecture,
    members,
    structures,
    walkers,
)
from almomd.data import write_json
from almomd.ensemble import EnsembleCalculator, uncertainty_column
from almomd.evaluation import evaluate as evaluate_ensemble
from almomd.md import MDSettings, run_walker
from almomd.seeds import derive_seed, rng_for

log = logging.getLogger(__name__)

COMPILE_CACHE = Path(".cache/torch_compile")  # torch.compile's caches, in the working directory


def subset(config: dict[str, Any], iteration: int, index: int, train_file: str, out: str) -> None:
    """Write subsample ``index`` of iteration ``iteration``'s training set."""
    frames = data.read_frames(train_file)
    chosen = data.subsample(
        frames,
        config["ensemble"]["subset_fraction"],
        rng_for(config["seed"], "subset", iteration, index),
    )
    data.write_frames(out, chosen)
    log.info("subset %d: %d of %d frames", index, len(chosen), len(frames))


def train_member(
    config: dict[str, Any],
    iteration: int,
    subset_index: int,
    seed_index: int,
    elements: Sequence[str],
    subset_file: str,
    run_dir: str,
    model_out: str,
    init_model: str | None = None,
) -> None:
    """Train and package one ensemble member (from ``init_model`` if given)."""
    member = (subset_index, seed_index)
    train_pack(config, iteration, [member], elements, {subset_index: subset_file},
               [run_dir], [model_out], {member: init_model} if init_model else {})  # fmt: skip


def train_pack(
    config: dict[str, Any],
    iteration: int,
    pack: Sequence[tuple[int, int]],
    elements: Sequence[str],
    subset_files: dict[int, str],
    run_dirs: Sequence[str],
    models_out: Sequence[str],
    init_models: dict[tuple[int, int], str] | None = None,
    log_file: str | None = None,
) -> None:
    """Train and package the members ``pack`` ((subset, seed) pairs) in one process.

    Each member has the seeds derived for it, so it is the same model however
    the members are packed into jobs. ``init_models``: warm starts by member.
    """
    init_models = init_models or {}
    runs = [
        training.MemberRun(
            train_file=subset_files[k],
            seed=derive_seed(config["seed"], "model", iteration, k, m),
            data_seed=derive_seed(config["seed"], "data", iteration, k, m),
            run_dir=run_dir,
            model_out=model_out,
            init_model=init_models.get((k, m)),
            architecture=member_architecture(config, m),
        )
        for (k, m), run_dir, model_out in zip(pack, run_dirs, models_out, strict=True)
    ]
    for (k, m), run in zip(pack, runs, strict=True):
        start = f"warm start from {run.init_model}" if run.init_model else "from scratch"
        log.info("member (%d, %d, %d): %s, %s", iteration, k, m, run.architecture, start)
    times = training.train_members(config, list(elements), runs, log_file)
    for (k, m), took in zip(pack, times, strict=True):
        log.info("member (%d, %d, %d) trained: %s", iteration, k, m, took)


def compile_member(config: dict[str, Any], model: str, out: str, log_file: str) -> None:
    """Compile a packaged member for the configured device."""
    seconds = training.compile_model(model, out, job_device(config), log_file)
    log.info("compiled %s in %.1f s", out, seconds)


def compile_choice(config: dict[str, Any], start: Atoms, steps: int, members: int) -> bool:
    """Whether to compile the ensemble for ``steps`` MD steps from ``start``.

    ``exploration.torch_compile``: true or false as set; ``auto`` compiles where
    it can (packaged members, a periodic cell) and where the run is long enough
    to earn back the compile time (:func:`almomd.batched.compile_pays_off`).
    """
    from almomd.batched import compile_pays_off

    setting = config["exploration"]["torch_compile"]
    if setting != "auto":
        return bool(setting)
    if config["training"]["compile"]:
        why, pays = "AOTInductor members (training.compile) run one by one", False
    elif not start.pbc.all() or start.cell.rank < 3:
        why, pays = "the structure is not periodic in 3 dimensions", False
    else:
        pays, why = compile_pays_off(steps, len(start), members)
    log.info("exploration.torch_compile auto: %s (%s)", "compiling" if pays else "eager", why)
    return pays


def ensemble(
    config: dict[str, Any],
    model_files: Sequence[str],
    start: Atoms | None = None,
    steps: int = 0,
) -> EnsembleCalculator:
    """Load the ensemble of ``model_files`` on the configured device.

    For MD of ``steps`` steps from ``start`` it is compiled if
    :func:`compile_choice` says so, with the campaign's compile cache.
    """
    compile = start is not None and compile_choice(config, start, steps, len(model_files))
    if compile:
        from almomd.batched import compile_cache

        compile_cache(COMPILE_CACHE)
        log.info("compiling the ensemble (torch.compile): the first step takes a while")
    device = job_device(config)
    log.info("device: %s (training.device: %s)", device, config["training"]["device"])
    return EnsembleCalculator(model_files, device=device, compile=compile)


def explore(
    config: dict[str, Any], iteration: int, walker: int, model_files: Sequence[str], out: str
) -> None:
    """Run exploration walker ``walker`` of iteration ``iteration``."""
    spec = walkers(config)[walker]
    md = from_section(
        MDSettings,
        systems.exploration(config, spec.system),
        temperature=spec.temperature,
        uncertainty_column=uncertainty_column(config["uncertainty"]),
    )
    start = systems.structure(config, spec.system)
    frames, reason = run_walker(
        start,
        ensemble(config, model_files, start, md.steps),
        md,
        walker,
        rng_for(config["seed"], "md", iteration, walker),
        out,
        iteration,
        system=spec.system,
    )
    log.info(
        "walker %d (system %s, T=%g K, replica %d): %d frames, %s",
        walker, spec.system, spec.temperature, spec.replica, len(frames), reason,
    )  # fmt: skip


def evaluate(
    config: dict[str, Any],
    model_files: Sequence[str],
    test_file: str,
    out_metrics: str,
    out_table: str,
    out_forces: str,
) -> None:
    """Evaluate the ensemble on the test set."""
    frames = data.read_frames(test_file)
    table, metrics, forces = evaluate_ensemble(ensemble(config, model_files), frames)
    table.to_csv(out_table, index=False)
    np.savetxt(out_forces, forces, header="reference predicted (eV/Angstrom)", fmt="%.6g")
    write_json(out_metrics, metrics)
    log.info("test set: %s", metrics)


def evaluate_heldout(
    config: dict[str, Any],
    iteration: int,
    model_files: Sequence[str],
    test_file: str,
    frame_files: Sequence[str],
    out_summary: str,
    out_table: str,
) -> dict[str, Any]:
    """Evaluate the ensemble on the held-out frames: errors with intervals, calibration.

    With ``heldout.source: audit`` the frames are the audit labels among
    ``frame_files`` (the label files of earlier iterations). Where there are no
    held-out frames (``test_set``, or no audit label yet) the test set is used
    and flagged as not covering the exploration conditions.
    """
    source = config["heldout"]["source"]
    frames = [a for f in frame_files for a in data.read_frames(f)]
    if source == "audit":
        frames = heldout.audit_frames(frames)
    if not frames:
        frames, source = data.read_frames(test_file), "test_set"
    covers = source in heldout.COVERING_SOURCES
    systems.tag(frames, structures(config))
    table, metrics, _ = evaluate_ensemble(ensemble(config, model_files), frames)
    table["condition"] = [str(a.info.get("al_condition", "unknown")) for a in frames]
    table["energy_abs_error"] = table["energy_error_per_atom"].abs()
    table.to_csv(out_table, index=False)
    targets = config["convergence"]
    summary = {
        "iteration": iteration,
        "source": source,
        "covers_conditions": covers,
        "n_members": metrics["n_members"],
        **heldout.summarize(
            table,
            rng_for(config["seed"], "bootstrap", iteration),
            uncertainty_column(config["uncertainty"]),
            targets["force_rmse"],
            targets["energy_rmse"],
            config["selection"]["calibrated_probability"],
        ),
    }
    write_json(out_summary, summary)
    log.info(
        "held-out (%s, %d frames): force RMSE %.4g eV/A, CI %s",
        source, len(frames), summary["force_rmse"], summary["force_rmse_ci"],
    )  # fmt: skip
    return summary


def select_frames(
    config: dict[str, Any],
    iteration: int,
    walker_files: Sequence[str],
    test_table: str,
    heldout_summary: str,
    heldout_table: str,
    out_frames: str,
    out_table: str,
    out_summary: str,
) -> None:
    """Select the frames of iteration ``iteration`` to label (and draw its audit frames)."""
    key = uncertainty_column(config["uncertainty"])
    trajectories = [data.read_frames(f) for f in walker_files]
    frames = [a for trajectory in trajectories for a in trajectory]
    u = [float(a.info[key]) for a in frames]
    settings = config["selection"]
    if settings["calibration"] == "walker_start":
        n_start = settings["calibration_frames"]
        start = [a for trajectory in trajectories for a in trajectory[:n_start]]
        calibration = pd.DataFrame(
            {"system": [systems.system_of(a) for a in start], key: [a.info[key] for a in start]}
        )
    else:
        table_file = test_table if settings["calibration"] == "test_set" else heldout_table
        calibration = pd.read_csv(table_file, dtype={"system": str})
    held = json.loads(Path(heldout_summary).read_text())
    fit = held["calibration"]
    own_fits = {
        name: statistics.Calibration(**figures["calibration"])
        for name, figures in held.get("per_system", {}).items()
        if figures.get("calibration")
    }
    rule = from_section(selection.SelectionRule, settings)
    audit = config["heldout"]["audit_per_walker"] if config["heldout"]["source"] == "audit" else 0
    table = selection.select(
        frames,
        u,
        calibration[key].to_numpy(dtype=float),
        rule,
        rng_for(config["seed"], "select", iteration),
        audit_per_walker=audit,
        calibrated=statistics.Calibration(**fit) if fit else None,
        target=held["error_target"],
        calibration_by_system={
            str(name): group[key].to_numpy(dtype=float)
            for name, group in calibration.groupby("system")
        }
        if "system" in calibration  # tables of older versions have no system column
        else None,
        calibrated_by_system=own_fits,
    )
    table["metric"] = key[2:]
    table.to_csv(out_table, index=False)
    chosen = []
    for i in table.index[table["selected"] | (table["decision"] == "audit")]:
        atoms = frames[i]
        source = "audit" if table.at[i, "decision"] == "audit" else settings["method"]
        spec = walkers(config)[int(atoms.info["al_walker"])]
        condition = heldout.condition_label(config, spec.system, spec.temperature)
        atoms.info.update(al_source=source, al_uncertainty=u[i], al_condition=condition)
        chosen.append(atoms)
    data.write_frames(out_frames, chosen)
    counts = table["decision"].value_counts().to_dict()
    write_json(
        out_summary,
        {"iteration": iteration, "metric": key[2:]}
        | selection.summary(table)
        | {"decisions": counts, "per_system": selection.summary_by_system(table)},
    )
    fraction = selection.uncertain_fraction(table)
    log.info(
        "iteration %d: %d candidates, decisions %s, uncertain fraction %.3g",
        iteration, len(frames), counts, fraction,
    )  # fmt: skip


def decide(
    config: dict[str, Any],
    iteration: int,
    metrics_file: str,
    heldout_summary: str,
    heldout_table: str,
    selection_summaries: Sequence[str],
    out: str,
    campaign: dict[str, Any] | None = None,
) -> None:
    """Write the convergence decision of iteration ``iteration``.

    ``selection_summaries`` are those of iterations ``0 .. iteration``, in order.
    ``campaign``, the whole configuration, is recorded as the iteration's settings
    (``almomd status`` compares it with the current one).
    """
    metrics = json.loads(Path(metrics_file).read_text())
    held = json.loads(Path(heldout_summary).read_text())
    summaries = [json.loads(Path(f).read_text()) for f in selection_summaries]
    current = summaries[-1]
    fractions = [math.nan if s["uncertain_fraction"] is None else s["uncertain_fraction"]
                 for s in summaries]  # fmt: skip
    decision = convergence.decide(
        iteration,
        config["max_iterations"],
        held,
        fractions,
        current["n_selected"],
        config["convergence"],
    )
    key = uncertainty_column(config["uncertainty"])
    target = held["error_target"]
    table = pd.read_csv(heldout_table, dtype={"system": str})
    payload = decision.to_dict() | {
        "n_selected": current["n_selected"],
        "n_audit": current["n_audit"],
        "test_force_rmse": metrics["force_rmse"],
        "test_energy_rmse": metrics["energy_rmse"],
        **heldout.status_figures(held),
        "uncertain_fraction": current["uncertain_fraction"],
        "thresholds": heldout.threshold_quality(table, key, current, target),
        "thresholds_by_system": {
            name: heldout.threshold_quality(table[table["system"] == name], key, figures, target)
            for name, figures in current.get("per_system", {}).items()
        }
        if "system" in table
        else {},
        "settings": campaign,
    }
    write_json(out, payload)
    log.info("iteration %d: %s", iteration, decision.reason)


def production_md(config: dict[str, Any], root: str, out: str, out_summary: str) -> dict:
    """Production MD with the ensemble of ``production.iteration`` (:mod:`almomd.production`).

    ``root`` is the campaign directory; its ensemble must have every member of the config.
    """
    from almomd import production as prod

    settings = config["production"]
    iteration = settings["iteration"]
    if iteration is None:
        iteration = prod.choose_iteration(root)
    system = settings["system"]
    if settings["structure"] is None:
        system = system or systems.names(config)[0]
        start = systems.structure(config, system)
    else:
        start = ase.io.read(settings["structure"], index=0)
        start.calc = None
    key = uncertainty_column(config["uncertainty"])
    threshold = prod.uncertainty_threshold(
        root, iteration, key, settings["threshold_sigmas"], system
    )
    md = from_section(
        MDSettings,
        config["exploration"] | {k: settings[k] for k in ("thermostat", "pressure", "steps")},
        temperature=settings["temperature"],
        log_interval=settings["log_interval"],
        max_uncertainty=None,
        uncertainty_column=key,
        temperature_end=None,  # production MD: the unbiased potential at one temperature
        bias=None,
        restarts=0,
    )
    models = prod.model_files(root, iteration, members(config))
    log.info(
        "production MD: iteration %d (%d members), %s at %g K, %d steps, threshold %s = %.4g",
        iteration, len(models), md.thermostat, md.temperature, md.steps, key, threshold,
    )  # fmt: skip
    rng = rng_for(config["seed"], "production", iteration, settings["temperature"])
    summary = prod.run_production(
        start,
        ensemble(config, [str(m) for m in models], start, md.steps),
        md,
        threshold,
        settings["stop_above_threshold"],
        out,
        rng,
    )
    summary |= {"iteration": iteration, "members": len(models), "metric": key}
    write_json(out_summary, summary)
    log.info("production MD: %s", summary)
    return summary
