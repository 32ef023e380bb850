"""The steps that make held-out truth: reference MD with the labeler, the held-out data set."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from almomd.data.frames import check_unique_ids, read_frames, read_user_frames, write_frames
from almomd.evaluation import heldout
from almomd.labeling.labelers import Labeler, LabelerSettings
from almomd.seeds import rng_for
from almomd.settings import systems
from almomd.settings.campaign import from_section
from almomd.settings.files import structures

log = logging.getLogger(__name__)


def reference_md(config: dict[str, Any], *, condition: int, out: str, launcher: str = "") -> None:
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


def heldout_dataset(config: dict[str, Any], *, files: Sequence[str], out: str) -> None:
    """Write the campaign's fixed held-out set (reference MD frames or the user's file)."""
    if config["heldout"]["source"] == "file":
        frames = read_user_frames(config["heldout"]["file"], "heldout")
        for atoms in frames:
            atoms.info["al_source"] = "heldout"
        systems.tag(frames, structures(config))
    else:
        frames = [a for f in files for a in read_frames(f)]
    check_unique_ids(frames, "held-out set")
    write_frames(out, frames)
    log.info("held-out set: %d frames (%s)", len(frames), config["heldout"]["source"])
