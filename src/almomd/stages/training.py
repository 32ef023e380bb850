"""The steps that train the ensemble: subsets, members (alone or in packs), compiled members."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from almomd.data.frames import read_frames, subsample, write_frames
from almomd.seeds import derive_seed, rng_for
from almomd.settings.packages import read_package
from almomd.settings.sections import Settings
from almomd.training import trainer
from almomd.training.fine_tune import reference_shifts

log = logging.getLogger(__name__)


def subset(settings: Settings, *, iteration: int, index: int, train_file: str, out: str) -> None:
    """Write subsample ``index`` of iteration ``iteration``'s training set."""
    frames = read_frames(train_file)
    rng = rng_for(settings.seed, "subset", iteration, index)
    chosen = subsample(frames, settings.ensemble.subset_fraction, rng)
    write_frames(out, chosen)
    log.info("subset %d: %d of %d frames", index, len(chosen), len(frames))


def train_member(
    settings: Settings,
    *,
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
    train_pack(
        settings,
        iteration=iteration,
        pack=[member],
        elements=elements,
        subset_files={subset_index: subset_file},
        run_dirs=[run_dir],
        models_out=[model_out],
        init_models={member: init_model} if init_model else {},
    )


def train_pack(
    settings: Settings,
    *,
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
    the members are packed into jobs. ``init_models``: the model each member starts
    from (a warm start, or ``training.start_from``'s package: then its types and cutoff
    are kept and its energy shifts re-referenced to the member's training frames).
    """
    init_models = init_models or {}
    start_from = settings.training.start_from
    package = read_package(start_from) if start_from else None
    cutoff = package.cutoff() if package else None
    elements = list(package.type_names) if package else list(elements)
    runs, fitted = [], {}  # the shifts per subsample: its seeds' members share them
    for (k, m), run_dir, model_out in zip(pack, run_dirs, models_out, strict=True):
        init = init_models.get((k, m))
        shifts, perturbation = None, 0.0
        if package and init and Path(init).resolve() == package.path.resolve():
            if k not in fitted:
                fitted[k] = reference_shifts(
                    init, read_frames(subset_files[k]), settings.model.reference_energies,
                )  # fmt: skip
            shifts = fitted[k]
            perturbation = settings.training.start_perturbation
        runs.append(
            trainer.MemberRun(
                train_file=subset_files[k],
                seed=derive_seed(settings.seed, "model", iteration, k, m),
                data_seed=derive_seed(settings.seed, "data", iteration, k, m),
                run_dir=run_dir,
                model_out=model_out,
                init_model=init,
                architecture=settings.member_architecture(m),
                shifts=shifts,
                cutoff=cutoff,
                perturbation=perturbation,
            )
        )
    for (k, m), run in zip(pack, runs, strict=True):
        start = "from scratch"
        if run.init_model:
            start = ("fine-tuning " if run.shifts else "warm start from ") + str(run.init_model)
        log.info("member (%d, %d, %d): %s, %s", iteration, k, m, run.architecture, start)
    times = trainer.train_members(settings, elements, runs, log_file)
    for (k, m), took in zip(pack, times, strict=True):
        log.info("member (%d, %d, %d) trained: %s", iteration, k, m, took)


def fit_novelty(
    settings: Settings,
    *,
    iteration: int,
    model_files: Sequence[str],
    train_file: str,
    out: str,
    heldout_files: Sequence[str] = (),
    test_file: str | None = None,
) -> None:
    """Fit the novelty reference of iteration ``iteration``'s ensemble to its training set.

    Every training frame goes through the ensemble once; the members' last node
    features of its atoms are the reference (:mod:`almomd.ensemble.novelty`).
    With ``test_file`` (an error-model metric) the per-atom error model is fitted
    too, on the frames the iteration is judged on (``heldout_files``, else the
    test set; :mod:`almomd.ensemble.error_model`) and kept with the reference.
    """
    from almomd.ensemble.calculator import EnsembleCalculator
    from almomd.ensemble.novelty import NoveltyReference

    frames = read_frames(train_file)
    calc = EnsembleCalculator(model_files, device=settings.job_device())
    reference = NoveltyReference.fit(
        [calc.features(atoms) for atoms in frames],
        [atoms.get_chemical_symbols() for atoms in frames],
        rng_for(settings.seed, "novelty", iteration),
    )
    atoms = None
    if test_file is not None:
        reference, atoms = fit_error_model(settings, calc, reference, heldout_files, test_file)
    reference.save(out, atoms)
    spacing = ", ".join(f"{s} {v:.3g}" for s, v in sorted(reference.spacing[0].items()))
    log.info(
        "novelty reference: %d training frames, %d members; member 0's spacing %s",
        len(frames), reference.n_members, spacing,
    )  # fmt: skip


def fit_error_model(settings: Settings, calc, reference, heldout_files, test_file: str):
    """The reference with the error model of its ensemble ``calc``, fitted per atom, and
    the atoms it was fitted on (system, spread, novelty, error)."""
    from dataclasses import replace

    from almomd.ensemble.error_model import ErrorModel
    from almomd.ensemble.uncertainty import atom_errors
    from almomd.evaluation import heldout

    frames, source = heldout.judged_frames(settings.heldout.source, heldout_files, test_file)
    calc.novelty = reference
    atoms = atom_errors(calc, frames)[["system", "sigma", "novelty", "error"]]
    model = ErrorModel.fit(atoms["sigma"], atoms["novelty"], atoms["error"])
    log.info(
        "error model on %d %s frames (%d atoms): e_i^2 = (%.3g sigma_i)^2 + (%.3g nu_i)^2 eV/A; "
        "force RMSE %.4g, predicted %.4g",
        len(frames), source, model.n_atoms, model.spread, model.novelty, model.rmse,
        model.rmse_fitted,
    )  # fmt: skip
    return replace(reference, error_model=model), atoms


def compile_member(settings: Settings, *, model: str, out: str, log_file: str) -> None:
    """Compile a packaged member for the configured device."""
    seconds = trainer.compile_model(model, out, settings.job_device(), log_file)
    log.info("compiled %s in %.1f s", out, seconds)
