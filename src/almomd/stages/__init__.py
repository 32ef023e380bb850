"""One function per workflow step: read the step's inputs, call the logic, write outputs.

Each function is named as its rule and its script (``workflow/scripts``), and is
one call from there, so every step can be run and tested as a plain function.
Its first argument is the :class:`~almomd.settings.sections.Settings` of the
config sections the rule passes as ``params.settings``; the files and
wildcards follow as keyword-only arguments, named as in the rule.
:mod:`almomd.stages.data` makes and labels data, :mod:`almomd.stages.heldout`
makes held-out truth, :mod:`almomd.stages.training` trains the ensemble (and
fits its novelty reference), :mod:`almomd.stages.exploration` runs it,
:mod:`almomd.stages.observables` judges its MD against reference dynamics and
:mod:`almomd.stages.iteration` judges the iteration and decides.
"""

from almomd.stages.data import (
    initial_candidates,
    initial_datasets,
    label_batch,
    labeler_check,
    merge_labels,
)
from almomd.stages.exploration import explore, explore_pack, production_md
from almomd.stages.heldout import heldout_dataset, reference_md
from almomd.stages.iteration import (
    decide,
    evaluate,
    evaluate_heldout,
    select_frames,
)
from almomd.stages.observables import harmonic_reference, observables, production_observables
from almomd.stages.training import (
    compile_member,
    fit_novelty,
    subset,
    train_member,
    train_pack,
)

__all__ = [
    "compile_member",
    "decide",
    "evaluate",
    "evaluate_heldout",
    "explore",
    "explore_pack",
    "fit_novelty",
    "harmonic_reference",
    "heldout_dataset",
    "initial_candidates",
    "initial_datasets",
    "label_batch",
    "labeler_check",
    "merge_labels",
    "observables",
    "production_md",
    "production_observables",
    "reference_md",
    "select_frames",
    "subset",
    "train_member",
    "train_pack",
]
