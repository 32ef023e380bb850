"""The steps that run the ensemble: exploration walkers and production MD."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import ase.io
from ase import Atoms

from almomd import layout
from almomd.data.frames import write_json
from almomd.ensemble.calculator import EnsembleCalculator
from almomd.ensemble.uncertainty import ERROR_MODEL_METRICS, NOVELTY_METRICS
from almomd.errors import ConfigError
from almomd.exploration.md import MDSettings, run_walker
from almomd.seeds import rng_for
from almomd.settings.sections import Settings, section

log = logging.getLogger(__name__)

COMPILE_CACHE = Path(".cache/torch_compile")  # torch.compile's caches, in the working directory


def compile_choice(
    settings: Settings, start: Atoms | Sequence[Atoms], steps: int, members: int
) -> bool:
    """Whether to compile the ensemble for ``steps`` MD steps from ``start`` (a structure,
    or the structures of walkers in one pass).

    ``exploration.torch_compile``: true or false as set; ``auto`` compiles where
    it can (packaged members, periodic cells) and where the run is long enough
    to earn back the compile time (:func:`almomd.ensemble.batched.compile_pays_off`).
    """
    from almomd.ensemble.batched import compile_pays_off

    setting = settings.exploration.torch_compile
    if setting != "auto":
        return bool(setting)
    starts = [start] if isinstance(start, Atoms) else list(start)
    if settings.training.compile:
        why, pays = "AOTInductor members (training.compile) run one by one", False
    elif not all(s.pbc.all() and s.cell.rank == 3 for s in starts):
        why, pays = "a structure is not periodic in 3 dimensions", False
    else:
        pays, why = compile_pays_off(steps, sum(len(s) for s in starts), members)
    log.info("exploration.torch_compile auto: %s (%s)", "compiling" if pays else "eager", why)
    return pays


def ensemble(
    settings: Settings,
    model_files: Sequence[str],
    start: Atoms | Sequence[Atoms] | None = None,
    steps: int = 0,
    novelty_file: str | Path | None = None,
) -> EnsembleCalculator:
    """Load the ensemble of ``model_files`` on the configured device.

    For MD of ``steps`` steps from ``start`` (or walkers in one pass from each of
    several structures) it is compiled if
    :func:`compile_choice` says so, with the campaign's compile cache. With
    ``novelty_file`` (the iteration's novelty reference) it gives every atom's
    novelty too, unless the members are AOTInductor-compiled (they give no
    features; the config check refuses a novelty metric with them).
    """
    if novelty_file is not None and any(str(f).endswith(".pt2") for f in model_files):
        log.info("compiled members (training.compile) give no features: no novelty")
        novelty_file = None
    compile = start is not None and compile_choice(settings, start, steps, len(model_files))
    if compile:
        from almomd.ensemble.batched import compile_cache

        compile_cache(COMPILE_CACHE)
        log.info("compiling the ensemble (torch.compile): the first step takes a while")
    device = settings.job_device()
    log.info("device: %s (training.device: %s)", device, settings.training.device)
    calc = EnsembleCalculator(model_files, device=device, compile=compile, novelty=novelty_file)
    if "uncertainty" in settings.config and calc.novelty is not None:
        require_error_model(settings, novelty_file, calc.novelty.error_model is not None)
    return calc


def require_error_model(settings: Settings, novelty_file, has_model: bool) -> None:
    """Refuse an error-model metric with a novelty reference fitted without the model."""
    metric = settings.uncertainty.metric
    if metric in ERROR_MODEL_METRICS and not has_model:
        raise ConfigError(
            f"config key uncertainty.metric: {metric} needs the error model of {novelty_file}, "
            "which was fitted without one (another metric, or an earlier version): delete it "
            "and run snakemake with it as the target to have it fitted again, or choose "
            "another metric"
        )


def _walker(settings: Settings, iteration: int, walker: int, out: str, previous: str | None):
    """Walker ``walker``'s run, given its calculator, and its starting structure and MD.

    ``previous``: the walker's frames of the previous iteration, to go on from
    (``exploration.continue_walkers``; :mod:`almomd.exploration.continuation`).
    """
    from almomd.exploration.continuation import continued_start

    spec = settings.walkers()[walker]
    md = section(
        MDSettings,
        settings.exploration_of(spec.system),
        temperature=spec.temperature,
        uncertainty_column=settings.uncertainty.column,
    )
    start = settings.structure(spec.system)
    continued = None
    if previous:
        continued, why = continued_start(previous, start, spec.system)
        log.info("walker %d: %s", walker, why)

    def run(calculator) -> str:
        frames, reason = run_walker(
            start,
            calculator,
            md,
            walker,
            rng_for(settings.seed, "md", iteration, walker),
            out,
            iteration,
            system=spec.system,
            continued=continued,
        )
        log.info(
            "walker %d (system %s, T=%g K, replica %d): %d frames, %s",
            walker, spec.system, spec.temperature, spec.replica, len(frames), reason,
        )  # fmt: skip
        return reason

    return run, start if continued is None else continued, md


def explore(
    settings: Settings,
    *,
    iteration: int,
    walker: int,
    model_files: Sequence[str],
    out: str,
    novelty_file: str | None = None,
    previous: str | None = None,
) -> None:
    """Run exploration walker ``walker`` of iteration ``iteration`` (``previous``: its
    frames of the previous iteration, where it goes on from them)."""
    run, start, md = _walker(settings, iteration, walker, out, previous)
    run(ensemble(settings, model_files, start, md.steps, novelty_file))


def explore_pack(
    settings: Settings,
    *,
    iteration: int,
    walkers: Sequence[int],
    model_files: Sequence[str],
    out: Sequence[str],
    novelty_file: str | None = None,
    previous: Sequence[str] = (),
) -> None:
    """Run ``walkers`` of iteration ``iteration`` in one process and one pass per MD step
    (:mod:`almomd.exploration.packed`); each writes its own ``out`` file, as alone
    (``previous``: their frames of the previous iteration, in the same order).

    Compiled as :func:`compile_choice` says for all the walkers' atoms (a walker
    that stops changes the pass's shapes: one recompilation).
    """
    from almomd.exploration.packed import run_together

    previous = list(previous) or [None] * len(walkers)
    found = [_walker(settings, iteration, w, f, p)
             for w, f, p in zip(walkers, out, previous, strict=True)]  # fmt: skip
    log.info("walkers %s in one pass (exploration.walkers_per_job)", list(walkers))
    starts = [start for _, start, _ in found]
    steps = max(md.steps for _, _, md in found)
    shared = ensemble(settings, model_files, starts, steps, novelty_file)
    run_together(shared, [run for run, _, _ in found])


def production_md(settings: Settings, *, root: str, out: str, out_summary: str) -> dict:
    """Production MD with the ensemble of ``production.iteration``.

    See :mod:`almomd.exploration.production`.

    ``root`` is the campaign directory; its ensemble must have every member of the config.
    """
    from almomd.exploration import production as prod

    run = settings.production
    iteration = run.iteration
    if iteration is None:
        iteration = prod.choose_iteration(root)
    system = run.system
    if run.structure is None:
        system = system or settings.system_names()[0]
        start = settings.structure(system)
    else:
        start = ase.io.read(run.structure, index=0)
        start.calc = None
    key = settings.uncertainty.column
    md = section(
        MDSettings,
        settings.exploration,
        thermostat=run.thermostat,
        pressure=run.pressure,
        steps=run.steps,
        temperature=run.temperature,
        log_interval=run.log_interval,
        max_uncertainty=None,
        uncertainty_column=key,
        temperature_end=None,  # production MD: the unbiased potential at one temperature
        bias=None,
        restarts=0,
    )
    models = prod.model_files(root, iteration, settings.members())
    novelty = layout.path(layout.NOVELTY, root, iteration=iteration)
    if not novelty.is_file():  # an iteration of a version before the novelty reference
        if settings.uncertainty.metric in NOVELTY_METRICS:
            raise ConfigError(
                f"config key uncertainty.metric: {settings.uncertainty.metric} needs the "
                f"novelty reference {novelty}, which iteration {iteration} does not have (an "
                "earlier version made it): run production MD of it with uncertainty.metric: "
                "force_max, or choose a later iteration (production.iteration)"
            )
        log.warning("%s is missing: production MD without novelty", novelty)
        novelty = None
    else:
        from almomd.ensemble.novelty import stored_error_model

        require_error_model(settings, novelty, stored_error_model(novelty) is not None)
    threshold = prod.uncertainty_threshold(root, iteration, key, run.threshold_sigmas, system)
    log.info(
        "production MD: iteration %d (%d members), %s at %g K, %d steps, threshold %s = %.4g",
        iteration, len(models), md.thermostat, md.temperature, md.steps, key, threshold,
    )  # fmt: skip
    rng = rng_for(settings.seed, "production", iteration, run.temperature)
    summary = prod.run_production(
        start,
        ensemble(settings, [str(m) for m in models], start, md.steps, novelty),
        md,
        threshold,
        run.stop_above_threshold,
        out,
        rng,
    )
    summary |= {"iteration": iteration, "members": len(models), "metric": key}
    write_json(out_summary, summary)
    log.info("production MD: %s", summary)
    return summary
