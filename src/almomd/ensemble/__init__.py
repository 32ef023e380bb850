"""The ensemble: one calculator for all members, the batched pass, uncertainty, the bias.

``almomd.ensemble:EnsembleCalculator`` (a trained MLIP as a labeler,
``labeler.name``) stays a valid name: it is looked up lazily, so importing a
module of this package does not import torch.
"""


def __getattr__(name: str):
    if name == "EnsembleCalculator":
        from almomd.ensemble.calculator import EnsembleCalculator

        return EnsembleCalculator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
