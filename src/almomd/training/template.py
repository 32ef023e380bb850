"""The NequIP (Hydra) training config of a member, rendered from the template."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from almomd import deploy
from almomd.settings.sections import Settings

log = logging.getLogger(__name__)


def validation_fraction(wanted: float, train_file: Path) -> float:
    """``training.val_fraction``, raised where it would leave a member's training file
    without a validation frame (NequIP's split takes ``floor(fraction x frames)``; with
    none, its early stopping has no metric and the member fails): then exactly one."""
    if not train_file.is_file():
        return wanted
    import math
    from itertools import islice

    import ase.io

    enough = math.ceil(1.0 / wanted) + 1  # frames past this leave one: stop reading there
    frames = sum(1 for _ in islice(ase.io.iread(train_file, format="extxyz"), enough))
    if frames < 2 or int(frames * wanted) >= 1:
        return wanted
    raised = round(1.0 / frames + 1e-6, 10)  # floor(frames x raised) = 1
    log.warning(
        "%s: %d frames, of which training.val_fraction %g leaves none to validate on: "
        "validating on 1 (fraction %.4g)", train_file.name, frames, wanted, raised,
    )  # fmt: skip
    return raised


def template_variables(
    settings: Settings,
    train_file: Path,
    chemical_symbols: list[str],
    seed: int,
    data_seed: int,
    warm_start: bool = False,
) -> dict[str, Any]:
    """Return the template variables for one member from the campaign config.

    ``warm_start``: the member fine-tunes a previous model, with the
    ``training.warm_start_*`` epochs and learning rate where they are set.
    """
    model, training = settings.model, settings.training
    val = validation_fraction(training.val_fraction, Path(train_file))
    epochs, rate = training.max_epochs, training.learning_rate
    if warm_start:
        epochs = training.warm_start_epochs or epochs
        rate = training.warm_start_learning_rate or rate
    return {
        "seed": seed,
        "data_seed": data_seed,
        "train_file": str(Path(train_file).resolve()),
        "train_fraction": round(1.0 - val, 10),
        "val_fraction": val,
        "cutoff_radius": model.r_max,
        "chemical_symbols": list(chemical_symbols),
        "l_max": model.l_max,
        "num_layers": model.num_layers,
        "num_features": model.num_features,
        "radial_mlp_depth": model.radial_mlp_depth,
        "radial_mlp_width": model.radial_mlp_width,
        "parity": model.parity,
        "model_dtype": model.model_dtype,
        "max_epochs": epochs,
        "batch_size": training.batch_size,
        "learning_rate": rate,
        "energy_weight": training.energy_weight,
        "force_weight": training.force_weight,
        "stress_weight": training.stress_weight,
        "patience": training.patience,
        "accelerator": "gpu" if settings.job_device() == "cuda" else "cpu",
    }


#: The settings a NequIP and an Allegro model share in the template's model block.
_SHARED_MODEL_KEYS = (
    "seed", "model_dtype", "type_names", "r_max", "l_max", "parity", "avg_num_neighbors",
    "per_type_energy_shifts", "per_type_energy_scales",
)  # fmt: skip


def allegro_model(nequip_model: dict[str, Any]) -> dict[str, Any]:
    """An Allegro model block sized like the template's NequIP block.

    The type names, cutoff, l_max, parity, seed and the data statistics are the
    NequIP block's; ``num_layers`` and ``num_features`` give Allegro's layers and
    its scalar features (tensor features and MLP widths follow from them).
    """
    return {
        "_target_": "allegro.model.AllegroModel",
        **{key: nequip_model[key] for key in _SHARED_MODEL_KEYS if key in nequip_model},
        "radial_chemical_embed": {
            "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
            "num_bessels": 8,
        },
        "radial_chemical_embed_dim": "${num_features}",
        "num_layers": "${num_layers}",
        "num_scalar_features": "${num_features}",
        "num_tensor_features": "${num_features}",
        "allegro_mlp_hidden_layers_depth": 1,
        "allegro_mlp_hidden_layers_width": "${num_features}",
        "readout_mlp_hidden_layers_depth": 1,
        "readout_mlp_hidden_layers_width": "${num_features}",
    }


def render_template(
    template: Path | str | None,
    variables: dict[str, Any],
    reference_energies: dict[str, float] | None = None,
    init_model: Path | str | None = None,
    architecture: str = "nequip",
    shifts: dict[str, float] | None = None,
    perturbation: float = 0.0,
) -> dict[str, Any]:
    """Return the template with its top-level variables set.

    With ``init_model`` (a packaged ``.nequip.zip``) training starts from that
    model's weights (fine-tuning) instead of a new model; its architecture and
    energy shifts come with it, the shifts of the types in ``shifts`` replaced
    (NequIP's ``modify_PerTypeScaleShift``: a package re-referenced to this
    campaign's labeler, :mod:`almomd.training.fine_tune`) and, with ``perturbation``,
    its weights moved by the member's noise (:func:`~almomd.training.fine_tune.perturbed`).
    ``architecture: allegro`` trains an Allegro model (``nequip-allegro``) in
    place of the template's NequIP model.

    ``template`` None is the bundled one (``model.template: null``).

    Raises
    ------
    ValueError
        If the template lacks one of the variables (it would be silently ignored).
    """
    template = deploy.nequip_template() if template is None else template
    with open(template) as handle:
        rendered = yaml.safe_load(handle)
    missing = sorted(set(variables) - set(rendered))
    if missing:
        raise ValueError(
            f"NequIP template {template} lacks the top-level variables {missing}; "
            "start from the default template (almomd.deploy.nequip_template())"
        )
    rendered.update(variables)
    loss = rendered["training_module"]["loss"]
    if variables["stress_weight"] > 0 and loss["_target_"] == "nequip.train.EnergyForceLoss":
        loss["_target_"] = "nequip.train.EnergyForceStressLoss"
        loss["coeffs"]["stress"] = "${stress_weight}"
    if architecture == "allegro":
        rendered["training_module"]["model"] = allegro_model(rendered["training_module"]["model"])
    elif architecture != "nequip":
        raise ValueError(f"unknown architecture {architecture!r}; use nequip or allegro")
    if init_model is not None:
        model = {
            "_target_": "nequip.model.ModelFromPackage",
            "package_path": str(Path(init_model).resolve()),
        }
        if shifts:
            model = {
                "_target_": "nequip.model.modify",
                "modifiers": [{"modifier": "modify_PerTypeScaleShift", "shifts": dict(shifts)}],
                "model": model,
            }
        if perturbation:
            model = {
                "_target_": "almomd.training.fine_tune.perturbed",
                "model": model,
                "seed": "${seed}",
                "perturbation": perturbation,
            }
        rendered["training_module"]["model"] = model
    elif reference_energies is not None:
        model = rendered["training_module"]["model"]
        model["per_type_energy_shifts"] = {
            symbol: float(reference_energies[symbol]) for symbol in variables["chemical_symbols"]
        }
    return rendered
