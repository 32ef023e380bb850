"""Initial candidate frames generated from the starting structures.

Without a user-supplied labeled file, the initial data of each system are
strained and rattled copies of its (super)cell plus snapshots of a short MD with a cheap
calculator, or with a pretrained model (a NequIP package, e.g. ``training.start_from``'s)
at the campaign's temperatures, keeping the snapshots farthest apart in its features.
They are labeled afterwards by the configured labeler.
"""

from __future__ import annotations

import logging

import numpy as np
from ase import Atoms

from almomd.exploration.md import langevin, thermalize
from almomd.labeling.single_points import make_calculator
from almomd.settings.sections import InitialData, Settings

log = logging.getLogger(__name__)


def rattled(atoms: Atoms, stdev: float, strain: float, rng: np.random.Generator) -> Atoms:
    """Copy of ``atoms`` isotropically strained by up to ``strain`` and rattled."""
    copy = atoms.copy()
    scale = 1.0 + rng.uniform(-strain, strain)
    copy.set_cell(copy.get_cell() * scale, scale_atoms=True)
    copy.positions += rng.normal(0.0, stdev, size=copy.positions.shape)
    return copy


def md_calculator(settings: Settings):
    """The initial MD's calculator: the package's model, or the named cheap labeler."""
    package = settings.initial_md_package()
    if package is None:
        return make_calculator(settings.initial_data.md_calculator)
    from almomd.ensemble.calculator import EnsembleCalculator

    return EnsembleCalculator([package], device=settings.job_device())


def farthest_apart(features: np.ndarray, n: int) -> list[int]:
    """``n`` rows of ``features`` picked greedily farthest from those already picked, from
    the first (farthest-point sampling), in their order."""
    picked = [0]
    nearest = np.linalg.norm(features - features[0], axis=1)
    while len(picked) < min(n, len(features)):
        best = int(np.argmax(nearest))
        picked.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(features - features[best], axis=1))
    return sorted(picked)


def md_snapshots(
    atoms: Atoms,
    n: int,
    calculator,
    temperature: float,
    steps_between: int,
    rng: np.random.Generator,
    pool: int = 1,
) -> list[Atoms]:
    """Return ``n`` snapshots of a Langevin MD with ``calculator``: of ``n * pool`` made, the
    ``n`` farthest apart in the calculator's features (``descriptor``: a package's) if
    ``pool`` > 1, else each one."""
    work = atoms.copy()
    work.calc = calculator
    thermalize(work, temperature, rng)
    dyn = langevin(work, 2.0, temperature, 0.02, rng)
    frames, features = [], []
    for i in range(n * pool):
        dyn.run(steps_between)
        frame = work.copy()
        frame.calc = None
        frame.set_constraint()  # the dynamics' FixCom, not a constraint of the frame
        frames.append(frame)
        if pool > 1:
            features.append(np.asarray(calculator.results["descriptor"], dtype=float))
        log.info("initial MD snapshot %d/%d (T=%.0f K)", i + 1, n * pool, work.get_temperature())
    if pool > 1:
        frames = [frames[i] for i in farthest_apart(np.array(features), n)]
        log.info("kept %d of %d snapshots, farthest apart in the package's features", n, n * pool)
    return frames


def generate(settings: Settings, rng: np.random.Generator) -> list[Atoms]:
    """Generate the unlabeled initial frames of every system, each with ``al_id`` and ``al_system``.

    ``initial_data.n_frames`` frames per system.
    """
    frames = []
    calculator = None
    if round(settings.initial_data.md_fraction * settings.initial_data.n_frames):
        calculator = md_calculator(settings)
    for name in settings.system_names():
        temperatures = [settings.initial_data.md_temperature]
        if temperatures[0] is None:  # the campaign's conditions
            temperatures = sorted(set(settings.exploration_of(name).temperatures))
        made = generate_for(
            settings.structure(name), settings.initial_data, rng, calculator, temperatures
        )
        for frame in made:
            frame.info.update(
                al_id=f"init-{len(frames):04d}", al_source="initial", al_iteration=-1,
                al_system=name,
            )  # fmt: skip
            frames.append(frame)
    return frames


def generate_for(
    atoms: Atoms,
    settings: InitialData,
    rng: np.random.Generator,
    calculator=None,
    temperatures: list[float] | None = None,
) -> list[Atoms]:
    """Rattled, strained copies of ``atoms`` and MD snapshots with ``calculator`` (default: the
    cheap labeler named) at ``temperatures`` in turn (default: ``md_temperature``)."""
    n_total = settings.n_frames
    n_md = round(settings.md_fraction * n_total)
    frames = []
    for i in range(n_total - n_md):
        # amplitudes from 0.5x to 1.5x the configured stdev for a spread of distortions
        stdev = settings.rattle_stdev * (0.5 + i / max(1, n_total - n_md - 1))
        frames.append(rattled(atoms, stdev, settings.strain, rng))
    if not n_md:
        return frames
    if calculator is None:
        calculator = make_calculator(settings.md_calculator)
    temperatures = temperatures or [settings.md_temperature]
    for k, count in enumerate(np.diff(np.linspace(0, n_md, len(temperatures) + 1).round())):
        if count:
            frames += md_snapshots(
                rattled(atoms, settings.rattle_stdev, 0.0, rng),
                int(count),
                calculator,
                temperatures[k],
                settings.md_steps_between,
                rng,
                settings.md_pool,
            )
    return frames
