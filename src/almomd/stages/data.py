"""The steps that make data: initial frames, labels, training sets.

Each function is one workflow step, named as its rule and its script; see
:mod:`almomd.stages`."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from almomd.data.frames import (
    check_unique_ids,
    merge,
    read_frames,
    read_user_frames,
    split_test_set_by_system,
    write_frames,
)
from almomd.evaluation import heldout
from almomd.exploration import initial
from almomd.labeling.labelers import Labeler
from almomd.labeling.single_points import batch_of, check_labeler, label_frames
from almomd.seeds import rng_for
from almomd.settings import systems
from almomd.settings.sections import Settings

log = logging.getLogger(__name__)


def initial_candidates(settings: Settings, *, out: str) -> None:
    """Generate the unlabeled initial frames."""
    frames = initial.generate(settings, rng_for(settings.seed, "initial"))
    write_frames(out, frames)
    log.info("wrote %d initial candidate frames to %s", len(frames), out)


def labeler_check(settings: Settings, *, out: str, launcher: str = "") -> None:
    """One single point of the first system's structure with the labeler, before any other.

    A labeler that cannot label (a wrong command, a missing pseudopotential, a
    code that does not converge) stops the campaign here, not after the initial
    labels, training and exploration ran; the time it took is logged.
    """
    system = settings.system_names()[0]
    atoms = settings.structure(system).copy()
    atoms.info.update(al_id="labeler-check", al_source="labeler_check", al_system=system)
    labeler = Labeler(settings.labeler, launcher)
    started = time.perf_counter()
    record = check_labeler(atoms, labeler, Path(out).parent / "calc")
    write_frames(out, [record])
    log.info(
        "labeler %s labels %s (%d atoms) in %.1f s: E=%.4f eV",
        settings.labeler.name, system, len(atoms), time.perf_counter() - started,
        record.get_potential_energy(),
    )  # fmt: skip


def label_batch(
    settings: Settings,
    *,
    frames_file: str,
    batch: int,
    out_labeled: str,
    out_failed: str,
    launcher: str = "",
) -> None:
    """Label batch ``batch`` of the frames in ``frames_file``.

    ``launcher`` (e.g. ``srun -n 4``) replaces ``{launcher}`` in the labeler's
    command and parameters, so file-based codes start under the job's MPI
    allocation. Each frame runs in ``calc/<al_id>`` next to ``out_labeled``.
    """
    frames = batch_of(read_frames(frames_file), batch, settings.labeler.n_batches)
    log.info("batch %d: %d frames to label with %s", batch, len(frames), settings.labeler.name)
    labeler = Labeler(settings.labeler, launcher)
    n_ok, n_failed = label_frames(frames, labeler, out_labeled, out_failed)
    log.info("batch %d: %d labeled, %d failed", batch, n_ok, n_failed)


def _gather_labels(
    settings: Settings,
    expected: int,
    labeled_files: Sequence[str],
    failed_files: Sequence[str],
    what: str,
) -> list:
    labeled = [a for f in labeled_files for a in read_frames(f)]
    n_failed = sum(len(read_frames(f)) for f in failed_files)
    if len(labeled) + n_failed != expected:
        raise RuntimeError(
            f"{what}: {expected} frames sent to labeling but {len(labeled) + n_failed} came "
            f"back in {list(labeled_files) + list(failed_files)}; a file was truncated or "
            "edited: delete the label files of that batch and rerun to label it again"
        )
    fraction = len(labeled) / expected if expected else 1.0
    least = settings.labeler.min_success_fraction
    if expected and (not labeled or fraction < least):
        reasons = Counter(
            str(a.info.get("fail_reason")) for f in failed_files for a in read_frames(f)
        )
        common = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3))
        raise RuntimeError(
            f"{what}: only {len(labeled)} of {expected} frames were labeled "
            f"(labeler.min_success_fraction = {least}). "
            f"Failures: {common}. See the failed files {list(failed_files)} and the "
            "labeling logs"
        )
    return labeled


def initial_datasets(
    settings: Settings,
    *,
    candidates_file: str | None,
    labeled_files: Sequence[str],
    failed_files: Sequence[str],
    out_train: str,
    out_test: str,
) -> None:
    """Build the first training set and the fixed test set."""
    if settings.initial_data.file is not None:
        frames = read_user_frames(settings.initial_data.file, "user")
    else:
        expected = len(read_frames(candidates_file))
        frames = _gather_labels(settings, expected, labeled_files, failed_files, "initial data")
    built = settings.structures()
    systems.tag(frames, built)
    if settings.test_set.file is not None:
        test = read_user_frames(settings.test_set.file, "test")
        systems.tag(test, built)
        train = frames
    else:
        train, test = split_test_set_by_system(
            frames, settings.test_set.size, rng_for(settings.seed, "test_split")
        )
    check_unique_ids(train + test, "initial data")
    write_frames(out_train, train)
    write_frames(out_test, test)
    log.info("training set: %d frames, test set: %d frames", len(train), len(test))


def merge_labels(
    settings: Settings,
    *,
    train_file: str,
    selected_file: str,
    labeled_files: Sequence[str],
    failed_files: Sequence[str],
    out: str,
) -> None:
    """Write the next training set: the current one plus the new labels."""
    expected = len(read_frames(selected_file))
    labeled = _gather_labels(settings, expected, labeled_files, failed_files, f"labels for {out}")
    new = heldout.training_frames(labeled)
    merged = merge(read_frames(train_file), new)
    write_frames(out, merged)
    log.info(
        "next training set: %d frames (+%d; %d audit frames held out)",
        len(merged), len(new), len(labeled) - len(new),
    )  # fmt: skip
