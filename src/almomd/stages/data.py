"""The steps that make data: initial frames, labels, training sets, held-out truth.

Each function is one workflow step, named as its rule and its script; see
:mod:`almomd.stages`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from almomd import data, heldout, initial, labeling, systems
from almomd.config import from_section, structures
from almomd.labelers import Labeler, LabelerSettings
from almomd.seeds import rng_for

log = logging.getLogger(__name__)


def initial_candidates(config: dict[str, Any], out: str) -> None:
    """Generate the unlabeled initial frames."""
    frames = initial.generate(config, rng_for(config["seed"], "initial"))
    data.write_frames(out, frames)
    log.info("wrote %d initial candidate frames to %s", len(frames), out)


def label_batch(
    config: dict[str, Any],
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
    settings = config["labeler"]
    frames = labeling.batch_of(data.read_frames(frames_file), batch, settings["n_batches"])
    log.info("batch %d: %d frames to label with %s", batch, len(frames), settings["name"])
    labeler = Labeler(from_section(LabelerSettings, settings), launcher)
    n_ok, n_failed = labeling.label_frames(frames, labeler, out_labeled, out_failed)
    log.info("batch %d: %d labeled, %d failed", batch, n_ok, n_failed)


def _gather_labels(
    config: dict[str, Any],
    expected: int,
    labeled_files: Sequence[str],
    failed_files: Sequence[str],
    what: str,
) -> list:
    labeled = [a for f in labeled_files for a in data.read_frames(f)]
    n_failed = sum(len(data.read_frames(f)) for f in failed_files)
    if len(labeled) + n_failed != expected:
        raise RuntimeError(
            f"{what}: {expected} frames sent to labeling but {len(labeled) + n_failed} came "
            f"back in {list(labeled_files) + list(failed_files)}; a file was truncated or "
            "edited: delete the label files of that batch and rerun to label it again"
        )
    fraction = len(labeled) / expected if expected else 1.0
    if expected and (not labeled or fraction < config["labeler"]["min_success_fraction"]):
        reasons = Counter(
            str(a.info.get("fail_reason")) for f in failed_files for a in data.read_frames(f)
        )
        common = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3))
        raise RuntimeError(
            f"{what}: only {len(labeled)} of {expected} frames were labeled "
            f"(labeler.min_success_fraction = {config['labeler']['min_success_fraction']}). "
            f"Failures: {common}. See the failed files {list(failed_files)} and the "
            "labeling logs"
        )
    return labeled


def initial_datasets(
    config: dict[str, Any],
    candidates_file: str | None,
    labeled_files: Sequence[str],
    failed_files: Sequence[str],
    out_train: str,
    out_test: str,
) -> None:
    """Build the first training set and the fixed test set."""
    if config["initial_data"]["file"] is not None:
        frames = data.read_user_frames(config["initial_data"]["file"], "user")
    else:
        expected = len(data.read_frames(candidates_file))
        frames = _gather_labels(config, expected, labeled_files, failed_files, "initial data")
    built = structures(config)
    systems.tag(frames, built)
    if config["test_set"]["file"] is not None:
        test = data.read_user_frames(config["test_set"]["file"], "test")
        systems.tag(test, built)
        train = frames
    else:
        train, test = data.split_test_set_by_system(
            frames, config["test_set"]["size"], rng_for(config["seed"], "test_split")
        )
    data.check_unique_ids(train + test, "initial data")
    data.write_frames(out_train, train)
    data.write_frames(out_test, test)
    log.info("training set: %d frames, test set: %d frames", len(train), len(test))


def merge_labels(
    config: dict[str, Any],
    train_file: str,
    selected_file: str,
    labeled_files: Sequence[str],
    failed_files: Sequence[str],
    out: str,
) -> None:
    """Write the next training set: the current one plus the new labels."""
    expected = len(data.read_frames(selected_file))
    labeled = _gather_labels(config, expected, labeled_files, failed_files, f"labels for {out}")
    new = heldout.training_frames(labeled)
    merged = data.merge(data.read_frames(train_file), new)
    data.write_frames(out, merged)
    log.info(
        "next training set: %d frames (+%d; %d audit frames held out)",
        len(merged), len(new), len(labeled) - len(new),
    )  # fmt: skip


def reference_md(config: dict[str, Any], condition: int, out: str, launcher: str = "") -> None:
    """Held-out truth: MD with the labeler itself at exploration condition ``condition``."""
    settings = config["heldout"]
    spec = heldout.conditions(config)[condition]
    labeler = Labeler(from_section(LabelerSettings, config["labeler"]), launcher)
    frames = heldout.reference_md(
        systems.structure(config, spec.system),
        labeler,
        heldout.reference_settings(config, spec),
        spec,
        settings["frames_per_condition"],
        settings["equilibration_steps"],
        settings["steps_between"],
        rng_for(config["seed"], "reference_md", condition),
        out,
        stress=config["labeler"]["stress"],
    )
    log.info("reference MD at %s: %d labeled frames in %s", spec.label, len(frames), out)


def heldout_dataset(config: dict[str, Any], files: Sequence[str], out: str) -> None:
    """Write the campaign's fixed held-out set (reference MD frames or the user's file)."""
    if config["heldout"]["source"] == "file":
        frames = data.read_user_frames(config["heldout"]["file"], "heldout")
        for atoms in frames:
            atoms.info["al_source"] = "heldout"
        systems.tag(frames, structures(config))
    else:
        frames = [a for f in files for a in data.read_frames(f)]
    data.check_unique_ids(frames, "held-out set")
    data.write_frames(out, frames)
    log.info("held-out set: %d frames (%s)", len(frames), config["heldout"]["source"])
