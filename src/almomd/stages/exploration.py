"""The steps that run the ensemble: exploration walkers and production MD."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase.io
from ase import Atoms

from almomd.data.frames import write_json
from almomd.ensemble.calculator import EnsembleCalculator
from almomd.ensemble.uncertainty import uncertainty_column
from almomd.exploration.md import MDSettings, run_walker
from almomd.seeds import rng_for
from almomd.settings import systems
from almomd.settings.campaign import from_section, job_device, members, walkers

log = logging.getLogger(__name__)

COMPILE_CACHE = Path(".cache/torch_compile")  # torch.compile's caches, in the working directory


def compile_choice(config: dict[str, Any], start: Atoms, steps: int, members: int) -> bool:
    """Whether to compile the ensemble for ``steps`` MD steps from ``start``.

    ``exploration.torch_compile``: true or false as set; ``auto`` compiles where
    it can (packaged members, a periodic cell) and where the run is long enough
    to earn back the compile time (:func:`almomd.ensemble.batched.compile_pays_off`).
    """
    from almomd.ensemble.batched import compile_pays_off

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
        from almomd.ensemble.batched import compile_cache

        compile_cache(COMPILE_CACHE)
        log.info("compiling the ensemble (torch.compile): the first step takes a while")
    device = job_device(config)
    log.info("device: %s (training.device: %s)", device, config["training"]["device"])
    return EnsembleCalculator(model_files, device=device, compile=compile)


def explore(
    config: dict[str, Any], *, iteration: int, walker: int, model_files: Sequence[str], out: str
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


def production_md(config: dict[str, Any], *, root: str, out: str, out_summary: str) -> dict:
    """Production MD with the ensemble of ``production.iteration``.

    See :mod:`almomd.exploration.production`.

    ``root`` is the campaign directory; its ensemble must have every member of the config.
    """
    from almomd.exploration import production as prod

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
