"""The steps that judge the dynamics: the harmonic reference and each iteration's observables."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from almomd.data.frames import write_json
from almomd.data.trajectories import (
    Trajectory,
    from_frames,
    read_trajectories,
    write_trajectories,
)
from almomd.evaluation.reference_md import reference_settings
from almomd.labeling.labelers import Labeler
from almomd.labeling.single_points import single_point
from almomd.observables.anharmonicity import Harmonic, fit_harmonic
from almomd.observables.dynamics import Protocol, member_trajectories, nve_drift, stability
from almomd.observables.measure import measure
from almomd.seeds import rng_for
from almomd.settings.sections import Settings
from almomd.stages.exploration import ensemble

log = logging.getLogger(__name__)


def harmonic_reference(settings: Settings, *, system: str, out: str, launcher: str = "") -> None:
    """Force constants of ``system``'s ideal structure (phonopy, labeled by the labeler)."""
    labeler = Labeler(settings.labeler, launcher)
    calc = labeler.calculator(Path(out).parent / "calc" / f"harmonic_{system}")
    started = time.perf_counter()
    harmonic, labeled = fit_harmonic(
        settings.structure(system), lambda atoms: single_point(atoms, calc, False)[1]
    )
    harmonic.save(out)
    log.info(
        "harmonic model of %s: %d structures labeled in %.0f s",
        system,
        labeled,
        time.perf_counter() - started,
    )


def protocol(settings: Settings, condition: int) -> Protocol:
    """The observables' MD at ``condition``: the reference dynamics' protocol."""
    spec = settings.conditions()[condition]
    chosen = settings.observables
    equilibration = chosen.equilibration(settings.heldout)
    return Protocol(
        reference_settings(settings.exploration_of(spec.system), spec),
        equilibration,
        chosen.steps,
        chosen.max_force,
        chosen.max_uncertainty,
        chosen.nve_steps,
    )


def reference_dynamics(
    settings: Settings, condition: int, files: list[str]
) -> list[Trajectory] | None:
    """The reference dynamics at ``condition``: the reference MD's (``.npz``) or the user's
    trajectory file (``observables.reference``); None without."""
    if not files:
        return None
    if files[0].endswith(".npz"):
        return read_trajectories(files[0])
    from almomd.data.importers import read_labeled

    spec = settings.conditions()[condition]
    timestep = settings.observables.reference_timestep
    return [from_frames(read_labeled(files[0]), timestep, spec.temperature, files[0])]


def observables(
    settings: Settings,
    *,
    iteration: int,
    condition: int,
    models: list[str],
    reference: list[str],
    harmonic: list[str],
    out: str,
    out_curves: str,
    out_md: str,
) -> None:
    """MLIP MD with each member at ``condition``, its observables against the reference."""
    spec = settings.conditions()[condition]
    run = protocol(settings, condition)
    start = settings.structure(spec.system)
    calc = ensemble(settings, models)
    members = settings.members()
    names = [f"member {k}_{m}" for k, m in members]
    rngs = [rng_for(settings.seed, "observables", iteration, condition, k, m) for k, m in members]
    trajectories = member_trajectories(start, calc, run, rngs, names)
    write_trajectories(out_md, trajectories)
    dynamics = reference_dynamics(settings, condition, reference)
    model = Harmonic.load(harmonic[0]) if harmonic and run.md.thermostat != "npt" else None
    verdict, curves = measure(trajectories, dynamics, model, settings.observables.blocks)
    nve = {"drift": float("nan"), "steps": 0, "fluctuation": float("nan"), "unit": "meV/atom/ps"}
    longest = max(trajectories, key=len)
    if run.nve_steps and len(longest):
        nve = nve_drift(longest.atoms(len(longest) - 1), calc, run)
    verdict["stability"] = stability(trajectories, run, nve, settings.observables.max_drift)
    write_json(
        out,
        {
            "iteration": iteration,
            "condition": spec.label,
            "system": spec.system,
            "temperature": spec.temperature,
            "reference": reference[0] if reference else None,
            "observables": verdict,
        },
    )
    with open(out_curves, "wb") as handle:
        np.savez_compressed(handle, **curves)
    agreed = {name: row.get("agree") for name, row in verdict.items() if not name.startswith("_")}
    log.info("observables of iteration %d at %s: %s", iteration, spec.label, agreed)


def production_observables(settings: Settings, *, root: str, out_dir: str) -> list[dict]:
    """``production.iteration``'s observables at every exploration condition, outside the
    workflow (``almomd md --observables``), against the campaign's reference dynamics
    where it has them (its reference MD's, or ``observables.reference``), with sigma^A
    where the harmonic model was made. Returns each condition's verdict."""
    from almomd import layout
    from almomd.exploration import production as prod

    iteration = settings.production.iteration
    if iteration is None:
        iteration = prod.choose_iteration(root)
    models = [str(p) for p in prod.model_files(root, iteration, settings.members())]
    found = []
    for spec in settings.conditions():
        given = settings.observables.reference
        dynamics = layout.path(layout.REFERENCE_DYNAMICS, root, condition=spec.index)
        reference = [given[spec.index]] if given else [str(p) for p in [dynamics] if p.is_file()]
        harmonic = layout.path(layout.HARMONIC, root, system=spec.system)
        out = Path(out_dir, f"iter_{iteration}")
        out.mkdir(parents=True, exist_ok=True)
        observables(
            settings, iteration=iteration, condition=spec.index, models=models,
            reference=reference, harmonic=[str(harmonic)] if harmonic.is_file() else [],
            out=str(out / f"condition_{spec.index}.json"),
            out_curves=str(out / f"curves_{spec.index}.npz"),
            out_md=str(out / f"md_{spec.index}.npz"),
        )  # fmt: skip
        found.append(json.loads((out / f"condition_{spec.index}.json").read_text()))
    return found
