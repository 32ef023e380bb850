"""The steps that make held-out truth: reference MD with the labeler, the held-out data set."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from almomd.data.frames import check_unique_ids, read_frames, read_user_frames, write_frames
from almomd.evaluation import reference_md as reference
from almomd.labeling.labelers import Labeler
from almomd.seeds import rng_for
from almomd.settings import systems
from almomd.settings.sections import Settings

log = logging.getLogger(__name__)


def reference_md(
    settings: Settings,
    *,
    condition: int,
    out: str,
    dynamics_out: str | None = None,
    launcher: str = "",
) -> None:
    """Held-out truth: MD with the labeler itself at exploration condition ``condition``
    (its frames in ``out``, every recorded step in ``dynamics_out``: the reference dynamics)."""
    held = settings.heldout
    spec = settings.conditions()[condition]
    # trajectory 0 has the seed of the one trajectory of earlier versions
    rngs = [rng_for(settings.seed, "reference_md", condition)] + [
        rng_for(settings.seed, "reference_md", condition, t)
        for t in range(1, held.trajectories_per_condition)
    ]
    frames = reference.reference_md(
        settings.structure(spec.system),
        Labeler(settings.labeler, launcher),
        reference.reference_settings(settings.exploration, spec),
        spec,
        held.frames_per_condition,
        held.equilibration_steps,
        held.steps_between,
        rngs,
        out,
        stress=settings.labeler.stress,
        dynamics_out=dynamics_out,
    )
    log.info("reference MD at %s: %d labeled frames in %s", spec.label, len(frames), out)


def heldout_dataset(settings: Settings, *, files: Sequence[str], out: str) -> None:
    """Write the campaign's fixed held-out set (reference MD frames or the user's file)."""
    if settings.heldout.source == "file":
        frames = read_user_frames(settings.heldout.file, "heldout")
        for atoms in frames:
            atoms.info["al_source"] = "heldout"
        systems.tag(frames, settings.structures())
    else:
        frames = [a for f in files for a in read_frames(f)]
    check_unique_ids(frames, "held-out set")
    write_frames(out, frames)
    log.info("held-out set: %d frames (%s)", len(frames), settings.heldout.source)
