"""Training one ensemble member with NequIP: render the template, train, package.

The NequIP (Hydra) template has a block of top-level variables that almomd
sets per member (seeds, data file, model size, training settings); the rest of
the template is plain NequIP configuration. ``nequip-train`` and
``nequip-package`` run, with their own entry points and arguments, in one
subprocess (:mod:`almomd.nequip_run`) for one member or several trained one
after the other (:func:`train_members`), so NequIP is imported once per job.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from almomd import nequip_run, resources
from almomd.config import job_device
from almomd.runner import console_script

log = logging.getLogger(__name__)


def template_variables(
    config: dict[str, Any],
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
    model, training = config["model"], config["training"]
    val = training["val_fraction"]
    epochs, rate = training["max_epochs"], training["learning_rate"]
    if warm_start:
        epochs = training["warm_start_epochs"] or epochs
        rate = training["warm_start_learning_rate"] or rate
    return {
        "seed": seed,
        "data_seed": data_seed,
        "train_file": str(Path(train_file).resolve()),
        "train_fraction": round(1.0 - val, 10),
        "val_fraction": val,
        "cutoff_radius": model["r_max"],
        "chemical_symbols": list(chemical_symbols),
        "l_max": model["l_max"],
        "num_layers": model["num_layers"],
        "num_features": model["num_features"],
        "radial_mlp_depth": model["radial_mlp_depth"],
        "radial_mlp_width": model["radial_mlp_width"],
        "parity": model["parity"],
        "model_dtype": model["model_dtype"],
        "max_epochs": epochs,
        "batch_size": training["batch_size"],
        "learning_rate": rate,
        "energy_weight": training["energy_weight"],
        "force_weight": training["force_weight"],
        "stress_weight": training["stress_weight"],
        "patience": training["patience"],
        "accelerator": "gpu" if job_device(config) == "cuda" else "cpu",
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
) -> dict[str, Any]:
    """Return the template with its top-level variables set.

    With ``init_model`` (a packaged ``.nequip.zip``) training starts from that
    model's weights (fine-tuning) instead of a new model; its architecture and
    energy shifts come with it. ``architecture: allegro`` trains an Allegro
    model (``nequip-allegro``) in place of the template's NequIP model.

    ``template`` None is the bundled one (``model.template: null``).

    Raises
    ------
    ValueError
        If the template lacks one of the variables (it would be silently ignored).
    """
    template = resources.nequip_template() if template is None else template
    with open(template) as handle:
        rendered = yaml.safe_load(handle)
    missing = sorted(set(variables) - set(rendered))
    if missing:
        raise ValueError(
            f"NequIP template {template} lacks the top-level variables {missing}; "
            "start from the default template (almomd.resources.nequip_template())"
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
        rendered["training_module"]["model"] = {
            "_target_": "nequip.model.ModelFromPackage",
            "package_path": str(Path(init_model).resolve()),
        }
    elif reference_energies is not None:
        model = rendered["training_module"]["model"]
        model["per_type_energy_shifts"] = {
            symbol: float(reference_energies[symbol]) for symbol in variables["chemical_symbols"]
        }
    return rendered


def _run(command: list[str], log_file: Path, cwd: Path) -> float:
    started = time.perf_counter()
    log.info("running: %s", " ".join(command))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    with open(log_file, "a") as handle:
        process = subprocess.run(command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=env)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(
            f"{command[0]} failed with exit code {process.returncode} "
            f"(full output in {log_file}):\n{tail}"
        )
    log.info("finished in %.1f s", elapsed)
    return elapsed


@dataclass(frozen=True)
class MemberRun:
    """One member to train: its data, seeds, run directory and packaged model.

    ``init_model``: start from this packaged model (warm start) instead of scratch.
    ``architecture``: nequip (the template's model) or allegro (:func:`allegro_model`).
    """

    train_file: Path | str
    seed: int
    data_seed: int
    run_dir: Path | str
    model_out: Path | str
    init_model: Path | str | None = None
    architecture: str = "nequip"


def train_members(
    config: dict[str, Any],
    chemical_symbols: list[str],
    runs: Sequence[MemberRun],
    log_file: Path | str | None = None,
) -> list[dict[str, float]]:
    """Train and package ``runs`` one after the other in one process.

    Each run directory starts clean; a model is moved to its ``model_out`` only
    once every member is packaged, so an interrupted job leaves no model behind.
    NequIP's output of all members goes to ``log_file`` (default: the first
    run directory's ``nequip-output.log``). Returns the seconds of each member's
    steps (imports, training, packaging; ``wall_s`` is the whole process's).
    """
    if not runs:
        raise ValueError("train_members: no member to train")
    command = [sys.executable, "-m", "almomd.nequip_run"]
    staged = []
    for run in runs:
        run_dir = Path(run.run_dir).resolve()
        if run_dir.exists():  # a half-finished earlier attempt: start clean
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        variables = template_variables(
            config,
            Path(run.train_file),
            chemical_symbols,
            run.seed,
            run.data_seed,
            run.init_model is not None,
        )
        rendered = render_template(
            config["model"]["template"],
            variables,
            config["model"]["reference_energies"],
            run.init_model,
            run.architecture,
        )
        (run_dir / "nequip.yaml").write_text(yaml.safe_dump(rendered, sort_keys=False))
        model_out = Path(run.model_out).resolve()
        partial = run_dir / model_out.name  # packaged here, moved into place when complete
        command += [str(run_dir), "nequip.yaml", str(partial)]
        staged.append((run_dir, partial, model_out))
    first = staged[0][0]
    log_file = Path(log_file).resolve() if log_file else first / "nequip-output.log"
    wall = _run(command, log_file, first)
    times = []
    for run_dir, partial, model_out in staged:
        times.append(json.loads((run_dir / nequip_run.TIMES).read_text()) | {"wall_s": wall})
        model_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(partial, model_out)
    return times


def train_member(
    config: dict[str, Any],
    train_file: Path | str,
    chemical_symbols: list[str],
    seed: int,
    data_seed: int,
    run_dir: Path | str,
    model_out: Path | str,
    init_model: Path | str | None = None,
    architecture: str = "nequip",
) -> dict[str, float]:
    """Train one member in ``run_dir`` and package it as ``model_out`` (:class:`MemberRun`).

    Returns the wall times (s) of the steps.
    """
    run = MemberRun(train_file, seed, data_seed, run_dir, model_out, init_model, architecture)
    return train_members(config, chemical_symbols, [run])[0]


def compile_model(model: Path | str, out: Path | str, device: str, log_file: Path | str) -> float:
    """Compile a packaged model with AOTInductor for the ASE integration on ``device``."""
    out = Path(out).resolve()
    return _run(
        [
            console_script("nequip-compile"),
            str(Path(model).resolve()),
            str(out),
            "--mode",
            "aotinductor",
            "--device",
            device,
            "--target",
            "ase",
        ],
        Path(log_file),
        out.parent,
    )
