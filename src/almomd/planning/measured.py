"""What a campaign's finished jobs measured: work units and seconds per rule, from the
Snakemake benchmark files and the files each job made (:mod:`almomd.planning.costs`
fits its cost model to them)."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from almomd import layout
from almomd.planning.costs import Campaign


def measured_units(path: Path, root: Path, facts: Campaign) -> tuple[str, float] | None:
    """The rule and the work units of the finished job that wrote benchmark file ``path``.

    Units are counted from the files the job made (frames, atoms, MD steps), and
    scaled as planned ones are (:meth:`Campaign.sized`); ``None`` for files this model
    does not use.
    """
    found = _measured_units(path, root, facts)
    return None if found is None else (found[0], facts.sized(found[0], found[1]))


def _measured_units(path: Path, root: Path, facts: Campaign) -> tuple[str, float] | None:
    from almomd.data.frames import read_frames

    scope, stem = path.parent.name, path.stem
    kind, _, rest = stem.partition("_")
    if scope == "heldout" and kind == "reference":
        return "reference_md", facts.reference_steps * facts.condition_atoms.get(int(rest), 0)
    if scope == "heldout" and kind == "harmonic":
        return "harmonic_reference", facts.harmonic_units(rest)
    if scope == "initial" and stem == "candidates":
        return "initial_candidates", facts.initial_md_units
    if scope == "initial" and kind == "label":
        files = [
            layout.path(p, root, batch=rest)
            for p in (layout.INITIAL_LABELED, layout.INITIAL_FAILED)
        ]
        return "label_initial_batch", _frame_atoms(files)
    if not scope.startswith("iter_"):
        return None
    iteration = int(scope[5:])

    def at(pattern: str, **wildcards: object) -> Path:
        return layout.path(pattern, root, iteration=iteration, **wildcards)

    if kind == "train":
        epochs = facts.warm_epochs if iteration > 0 else facts.epochs
        if rest.startswith("pack_"):  # train_pack_P: every member of the pack
            subsets = [k for k, _ in facts.packs[int(rest[5:])]]
            frames = sum(len(read_frames(at(layout.SUBSET, subset=k))) for k in subsets)
            return "train_pack", frames * epochs
        subset, _ = rest.split("_")
        return "train_member", len(read_frames(at(layout.SUBSET, subset=subset))) * epochs
    if kind == "explore":
        packed = rest.startswith("pack_")  # explore_pack_P: every walker of the pack
        units = 0.0
        for walker in facts.walker_packs[int(rest[5:])] if packed else [rest]:
            trajectory = read_frames(at(layout.WALKER, walker=walker))
            steps = max(int(a.info.get("al_step", 0)) for a in trajectory)
            units += steps * len(trajectory[0]) * facts.members
        return ("explore_pack" if packed else "explore"), units
    if kind == "label":
        return "label_batch", _frame_atoms(
            [at(layout.LABELED, batch=rest), at(layout.FAILED, batch=rest)]
        )
    if stem == "evaluate":
        return "evaluate", facts.n_test * facts.atoms * facts.members
    if stem == "evaluate_heldout":
        return "evaluate_heldout", facts.n_heldout * facts.atoms * facts.members
    if kind == "compile":
        return "compile_member", 1.0
    if kind == "observables":
        return "observables", facts.raw_units("observables", {"condition": rest})
    return None


def _frame_atoms(files: Iterable[Path]) -> float:
    from almomd.data.frames import read_frames

    return float(sum(len(a) for f in files if f.is_file() for a in read_frames(f)))


def benchmark_seconds(path: Path | str) -> list[float]:
    """The wall times (column ``s``) of a Snakemake benchmark file, one per repeat."""
    with open(path, newline="") as handle:
        return [float(row["s"]) for row in csv.DictReader(handle, delimiter="\t")]


def measurements(
    root: Path | str, facts: Campaign, before: int | None = None
) -> dict[str, list[tuple[float, float]]]:
    """(units, seconds) of the campaign's finished jobs per rule, from its benchmark files.

    ``before``: only the initial and held-out jobs and iterations below it.
    """
    root = Path(root)
    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for path in sorted(Path(root, layout.BENCHMARKS).glob("*/*.tsv")):
        scope = path.parent.name
        if before is not None and scope.startswith("iter_") and int(scope[5:]) >= before:
            continue
        try:
            found = measured_units(path, root, facts)
        except (FileNotFoundError, ValueError, IndexError):  # its files are gone, or its pack
            continue
        if found is not None and found[1] > 0:
            samples[found[0]] += [(found[1], s) for s in benchmark_seconds(path)]
    return dict(samples)
