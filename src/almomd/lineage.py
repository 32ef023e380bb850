"""Which files of a campaign are made from which: what a lost file costs and how to recover.

Snakemake does not remake a missing input of a finished step, and a step whose
input is remade is redone with everything after it. So a campaign with a lost
file either looks finished without it or, rebuilt blindly, redoes far more than
the file. One rule, stated here and nowhere else: for a lost file,

* a file remade exactly from intact inputs (a training set from the previous
  one and its labels, the first training set and the test set from the initial
  labels, an ensemble member from its seeds) is rebuilt by requesting it by name,
  and nothing that used it is redone (its users take it as ``ancient``);
* anything else (explored frames, evaluations, selections, labels) is redone
  with exactly the work that depends on it: the advice names the smallest set of
  files to delete, the later iterations included when the iteration's training
  data would change.

:func:`damage` finds the lost files; :func:`lost_members` the lost members.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from almomd import layout

#: the steps of an iteration after training, the files of each that later steps use,
#: and the steps of the same iteration each is made from (see workflow/rules)
STEP_FILES = {
    "exploration": (layout.WALKER,),
    "evaluation": (
        layout.TEST_METRICS,
        layout.TEST_TABLE,
        layout.HELDOUT_SUMMARY,
        layout.HELDOUT_TABLE,
    ),
    "selection": (layout.SELECTED, layout.SELECTION_SUMMARY),
    "labels": (layout.LABELED, layout.FAILED),
    "decision": (layout.DECISION,),
}
MADE_FROM = {
    "selection": ("exploration", "evaluation"),
    "labels": ("selection",),
    "decision": ("evaluation", "selection"),
}
#: the steps the next iteration's training set is made from
NEXT_TRAINING_SET = ("selection", "labels")
#: what to delete to redo a step: its directory (the decision: its file)
STEP_PLACE = {
    step: str(Path(files[0]).parent) if step != "decision" else files[0]
    for step, files in STEP_FILES.items()
}


@dataclass(frozen=True)
class Damage:
    """A lost file that existing results were made from, and the way back."""

    missing: str  # path relative to the campaign directory
    used_by: str  # an existing file made from it
    problem: str = "is missing"  # what is wrong with it (cut short: what it lacks)
    request: tuple[str, ...] = ()  # targets that remake it exactly; nothing else is redone
    delete: tuple[str, ...] = ()  # else: what to delete so that what depends on it is redone


def advice(found: list[Damage]) -> str:
    """What is lost and the one way back (the smallest deletion, else the targets to request)."""
    first = found[0]
    lost = f"{first.missing} {first.problem}, but {first.used_by} was made from it"
    if len(found) > 1:
        lost += f" ({len(found) - 1} more lost: {', '.join(d.missing for d in found[1:])})"
    deleted = [p for d in found for p in d.delete]
    if deleted:
        smallest = [
            p for p in dict.fromkeys(deleted) if not any(p.startswith(q + "/") for q in deleted)
        ]
        return (
            f"{lost}: the campaign's history is incomplete. Restore the file, or delete "
            f"{' '.join(smallest)} so that exactly the work made from it is redone "
            "(everything else is kept)"
        )
    commands = ", then ".join(f"snakemake --cores N {t}" for t in requests(found))
    return (
        f"{lost}. It is remade exactly from intact inputs, and nothing that used it is redone, "
        f"when requested by name: {commands}"
    )


def requests(found: list[Damage]) -> list[str]:
    """The targets that repair ``found``, to be requested one at a time in this order (each
    is remade from the one before; requested together, the steps between would be redone).
    Empty where files must be deleted instead."""
    if any(d.delete for d in found):
        return []
    return list(dict.fromkeys(t for d in found for t in d.request))


def _expand(pattern: str, iteration: int, n_walkers: int, n_batches: int) -> list[str]:
    if "{walker}" in pattern:
        return [pattern.format(iteration=iteration, walker=w) for w in range(n_walkers)]
    if "{batch}" in pattern:
        return [pattern.format(iteration=iteration, batch=b) for b in range(n_batches)]
    return [pattern.format(iteration=iteration)]


def _after(step: str) -> set[str]:
    """The steps of an iteration made, directly or not, from ``step``."""
    found: set[str] = set()
    for other, sources in MADE_FROM.items():
        if step in sources:
            found |= {other} | _after(other)
    return found


def count_frames(path: Path | str) -> int | None:
    """The number of frames of an extxyz file, or None where the file is cut short.

    Reads only the atom counts, so a campaign's label files are checked in
    moments before every run (a whole frame is an atom count, a comment line
    and that many atom lines).
    """
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    n_frames, at = 0, 0
    while at < len(lines):
        if not lines[at].strip() and all(not line.strip() for line in lines[at:]):
            break  # trailing blank lines
        try:
            n_atoms = int(lines[at])
        except ValueError:
            return None
        at += n_atoms + 2
        if at > len(lines) or (n_atoms and not lines[at - 1].strip()):
            return None
        n_frames += 1
    return n_frames


def cut_short_batches(
    root: Path | str, sent: str, labeled: str, failed: str, n_batches: int
) -> list[tuple[str, str, str]]:
    """The labeling batches whose files hold fewer frames than were sent to labeling.

    ``sent``, ``labeled`` and ``failed`` are paths (relative to ``root``) of the
    frames sent and of the batches' files (``{batch}`` in them); frames are dealt
    to batches round-robin. Returns (labeled file, failed file, what is wrong)
    for each batch whose two files both exist but do not add up to its frames.
    """
    root = Path(root)
    n_sent = count_frames(root / sent) if (root / sent).is_file() else None
    if n_sent is None:
        return []
    found = []
    for b in range(n_batches):
        files = [pattern.format(batch=b) for pattern in (labeled, failed)]
        if not all((root / f).is_file() for f in files):
            continue
        counts = [count_frames(root / f) for f in files]
        expected = len(range(b, n_sent, n_batches))
        if None in counts:
            found.append((*files, "is cut short (its last frame is incomplete)"))
        elif sum(counts) != expected:
            lacks = f"holds {sum(counts)} of the {expected} frames sent to labeling"
            found.append((*files, f"{lacks} with its failed file (cut short or edited)"))
    return found


def _initial_inputs_intact(root: Path, n_batches: int, generated: bool) -> bool:
    if not generated:
        return True  # the user's initial data file (checked with the config)
    return all(
        (root / layout.INITIAL_LABELED.format(batch=b)).is_file()
        and (root / layout.INITIAL_FAILED.format(batch=b)).is_file()
        for b in range(n_batches)
    ) and not _cut_initial(root, n_batches)


def _cut_initial(root: Path, n_batches: int) -> list[tuple[str, str, str]]:
    return cut_short_batches(
        root, layout.INITIAL_CANDIDATES, layout.INITIAL_LABELED, layout.INITIAL_FAILED, n_batches
    )


def damage(
    root: Path | str, n_walkers: int, n_batches: int, generated_initial: bool = True
) -> list[Damage]:
    """Every lost file that existing results of the campaign in ``root`` were made from.

    ``generated_initial``: the first training and test sets come from labeled
    initial candidates (``initial_data.file`` unset), not from the user's file.
    """
    root = Path(root)
    existing = layout.iterations(root)
    iterations = list(range(existing[-1] + 1)) if existing else []  # a deleted one, too
    found: list[Damage] = []

    def exists(path: str) -> bool:
        return (root / path).is_file()

    rebuildable = {0: _initial_inputs_intact(root, n_batches, generated_initial)}
    cut = _cut_initial(root, n_batches) if generated_initial else []
    made = [f for f in (layout.TRAIN.format(iteration=0), layout.TEST_SET) if exists(f)]
    if cut and made:  # labels again, and every iteration made from them again
        redone = [layout.ITERATION.format(iteration=j) for j in existing]
        redone += [layout.TEST_SET] * exists(layout.TEST_SET)
        files = tuple(f for labeled, failed, _ in cut for f in (labeled, failed))
        found.append(Damage(cut[0][0], made[0], cut[0][2], delete=files + tuple(redone)))
    evaluated = (layout.TEST_METRICS.format(iteration=i) for i in iterations)
    used = next((f for f in evaluated if exists(f)), None)
    if used and not exists(layout.TEST_SET) and rebuildable[0]:
        found.append(Damage(layout.TEST_SET, used, request=(layout.TEST_SET,)))
    for i in iterations:
        files = {
            step: _expand_all(patterns, i, n_walkers, n_batches)
            for step, patterns in STEP_FILES.items()
        }
        train, next_train = layout.TRAIN.format(iteration=i), layout.TRAIN.format(iteration=i + 1)
        later = [j for j in existing if j > i]
        users = [f for fs in files.values() for f in fs if exists(f)]
        if exists(next_train):
            users.append(next_train)
        if not exists(train) and users:
            if rebuildable.get(i, False):
                found.append(Damage(train, users[0], request=(train,)))
            elif i == 0:  # the initial labels are gone: every iteration is redone
                redone = [layout.ITERATION.format(iteration=j) for j in existing]
                redone += [layout.TEST_SET] * exists(layout.TEST_SET)
                found.append(Damage(train, users[0], delete=tuple(redone)))
        for step, paths in files.items():
            lost = [f for f in paths if not exists(f)]
            if not lost:
                continue
            made = [f for s in sorted(_after(step)) for f in files[s] if exists(f)]
            redone = [STEP_PLACE[s].format(iteration=i) for s in sorted(_after(step))]
            redone = [place for place in redone if any(f.startswith(place) for f in made)]
            if step in ("exploration", "evaluation", *NEXT_TRAINING_SET) and later:
                made += [next_train] if exists(next_train) else []
                redone += [layout.ITERATION.format(iteration=j) for j in later]
            if redone:
                used = made[0] if made else redone[0]
                found.append(Damage(lost[0], used, delete=tuple(redone)))
        lost = _lost_observables(root, i)
        if lost:  # remade exactly (seeded MD), and nothing made from them changes
            decision = layout.DECISION.format(iteration=i)
            found.append(Damage(lost[0], decision, request=(lost[0],)))
        cut = cut_short_batches(
            root,
            layout.SELECTED.format(iteration=i),
            layout.LABELED.format(iteration=i, batch="{batch}"),
            layout.FAILED.format(iteration=i, batch="{batch}"),
            n_batches,
        )
        made = [next_train] if exists(next_train) else []
        made += [layout.ITERATION.format(iteration=j) for j in later]
        if cut and made:  # labels again, and the iterations made from them again
            batch_files = tuple(f for labeled, failed, _ in cut for f in (labeled, failed))
            redone = [layout.ITERATION.format(iteration=j) for j in later]
            found.append(Damage(cut[0][0], made[0], cut[0][2], delete=batch_files + tuple(redone)))
        # the next training set is exact from this one, the selection and the labels
        rebuildable[i + 1] = (
            (exists(train) or rebuildable.get(i, False))
            and all(exists(f) for step in NEXT_TRAINING_SET for f in files[step])
            and not cut
        )
    return found


def _lost_observables(root: Path, iteration: int) -> list[str]:
    """The verdicts of ``iteration``'s observables that its decision was made from
    (``observables`` in the decision) and that are gone or lack their curves or
    trajectories (the same job's outputs)."""
    path = root / layout.DECISION.format(iteration=iteration)
    try:
        decision = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return []
    lost = []
    made_from = decision.get("observables", []) if isinstance(decision, dict) else []
    for verdict in made_from:
        condition = Path(verdict).stem.rsplit("_", 1)[-1]
        made = [
            p.format(iteration=iteration, condition=condition)
            for p in (layout.OBSERVABLES, layout.OBSERVABLE_CURVES, layout.OBSERVABLE_MD)
        ]
        if not all((root / f).is_file() for f in made):
            lost.append(made[0])
    return lost


def _expand_all(patterns: tuple[str, ...], iteration: int, n_walkers: int, n_batches: int):
    return [f for p in patterns for f in _expand(p, iteration, n_walkers, n_batches)]


def lost_members(root: Path | str, members: list[tuple[int, int]], compiled: bool) -> list[str]:
    """Ensemble member files of explored iterations that are gone (deleted, lost)."""
    missing = []
    for i in layout.iterations(root):
        if list(Path(root).glob(layout.WALKER.format(iteration=i, walker="*"))):
            files = (layout.member_file(i, k, m, compiled) for k, m in members)
            missing += [f for f in files if not Path(root, f).is_file()]
    return missing


def labeler_checked(root: Path | str) -> bool:
    """Whether the campaign's labeling waits for the labeler's check: always, but in a
    campaign that began labeling without it (an earlier version), which goes on without."""
    root = Path(root)
    started = (root / layout.INITIAL_LABELED.format(batch=0)).is_file() or layout.iterations(root)
    return (root / layout.LABELER_CHECK).is_file() or not started


def keeps_reference_dynamics(root: Path | str) -> bool:
    """Whether the reference MD keeps its whole trajectories: always, but in a campaign
    whose reference MD ran without (an earlier version), which is not run again for them:
    its observables then have no reference dynamics, and say so."""
    root = Path(root)
    ran = list(root.glob(layout.REFERENCE_MD.format(condition="*")))
    kept = list(root.glob(layout.REFERENCE_DYNAMICS.format(condition="*")))
    return bool(kept) or not ran


def unreadable_summaries(root: Path | str) -> list[str]:
    """The campaign's status file if it cannot be read (truncated, edited): it is only a
    summary of the iterations' files, so it is written again rather than trusted."""
    path = Path(root, layout.STATUS)
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return [layout.STATUS]
    return [] if isinstance(rows, list) else [layout.STATUS]
