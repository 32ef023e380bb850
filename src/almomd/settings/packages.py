"""What a NequIP model package (``.nequip.zip``) holds, read from the archive without torch.

A package written by ``nequip-package`` (NequIP 0.19) is a zip archive whose
``<name>/model/package_metadata.txt`` lists the model's atom types and whose
``<name>/model/config.yaml`` is the training configuration it was made from.
``training.start_from`` names such a package (a foundation model, or any
earlier almomd member); the model settings that must follow it (type names,
cutoff, architecture and the sizes of its layers) are read here, so that a
configuration conflicting with it is refused before any job runs.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from almomd.errors import ConfigError

#: Settings of the config's ``model`` section that a package fixes (its config.yaml names
#: them alike).
FIXED_BY_PACKAGE = ("r_max", "l_max", "num_layers", "num_features", "radial_mlp_depth",
                    "radial_mlp_width", "parity", "model_dtype")  # fmt: skip


@dataclass(frozen=True)
class Package:
    """The facts of one model package that a campaign must follow.

    ``model``: the package's model settings named in :data:`FIXED_BY_PACKAGE`, as far as
    its training configuration states them (a package made by fine-tuning another
    one states none: its cutoff is then read by loading the model, :meth:`cutoff`).
    """

    path: Path
    type_names: tuple[str, ...]
    architecture: str  # nequip or allegro
    model: dict[str, Any] = field(default_factory=dict)
    parameter_bytes: int = 0  # the tensors it stores (weights and buffers): its size

    def cutoff(self) -> float:
        """The model's cutoff radius (A): from its configuration, else from the model."""
        if "r_max" in self.model:
            return float(self.model["r_max"])
        from nequip.utils.resolvers import cutoff_radius_from_package

        return float(cutoff_radius_from_package(str(self.path)))


def _member(archive: zipfile.ZipFile, name: str) -> str | None:
    return next((n for n in archive.namelist() if n.endswith(f"/model/{name}")), None)


def _model_block(config: dict[str, Any]) -> dict[str, Any]:
    """The model block of a training configuration, through wrappers of it
    (``nequip.model.modify``, almomd's perturbed start: a nested ``model``)."""
    model = (config.get("training_module") or {}).get("model") or {}
    while isinstance(model, dict) and isinstance(model.get("model"), dict):
        model = model["model"]
    return model if isinstance(model, dict) else {}


def read_package(path: Path | str, key: str = "training.start_from") -> Package:
    """The facts of the package at ``path``.

    Raises ConfigError naming ``key`` if the file is missing or is not a NequIP package.
    """
    path = Path(path)
    fix = (
        "give the path of a .nequip.zip file made by nequip-package (a foundation model "
        "downloaded beforehand, or an almomd member under results/iter_*/models/)"
    )
    if not path.is_file():
        raise ConfigError(f"config key {key}: {path} does not exist; {fix}")
    try:
        with zipfile.ZipFile(path) as archive:
            metadata_name = _member(archive, "package_metadata.txt")
            if metadata_name is None:
                raise ConfigError(
                    f"config key {key}: {path} is a zip archive without "
                    f"model/package_metadata.txt, not a NequIP package; {fix}"
                )
            metadata = yaml.safe_load(archive.read(metadata_name)) or {}
            config_name = _member(archive, "config.yaml")
            config = yaml.safe_load(archive.read(config_name)) if config_name else {}
            stored = sum(
                i.file_size
                for i in archive.infolist()
                if "/.data/" in i.filename and i.filename.endswith(".storage")
            )
    except (zipfile.BadZipFile, OSError) as exc:
        raise ConfigError(f"config key {key}: {path} is not a zip archive ({exc}); {fix}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config key {key}: {path}: unreadable package metadata ({exc})") from exc
    types = metadata.get("atom_types")
    if not isinstance(types, dict) or not types:
        raise ConfigError(f"config key {key}: {path} names no atom types in its metadata; {fix}")
    model = _model_block(config or {})
    target = str(model.get("_target_", ""))
    found = {
        name: model[name]
        for name in FIXED_BY_PACKAGE
        if "ModelFromPackage" not in target and isinstance(model.get(name), int | float | str)
    }
    return Package(
        path=path,
        type_names=tuple(str(types[i]) for i in sorted(types)),
        architecture="allegro" if "allegro" in target.lower() else "nequip",
        model=found,
        parameter_bytes=stored,
    )


def check_start_from(
    given: Any, completed: dict[str, Any], base_dir: Path, symbols: set[str]
) -> Package | None:
    """Check ``training.start_from`` against the configuration: the package exists and
    reads, its types cover every element, and no model setting the user gave (``given``:
    the configuration as written, before defaults) or architecture conflicts with it; a
    ``training.start_perturbation`` written without a package is refused. Returns the
    package (None: unset).
    """
    given = given if isinstance(given, dict) else {}
    written = given.get("training") if isinstance(given.get("training"), dict) else {}
    start = completed["training"]["start_from"]
    if start is None:
        if written.get("start_perturbation"):
            raise ConfigError(
                "config key training.start_perturbation: moves the weights a member starts "
                "from when it fine-tunes training.start_from's package, but none is given: "
                "set training.start_from, or remove the key"
            )
        return None
    package = read_package(base_dir / start)
    missing = sorted(symbols - set(package.type_names))
    if missing:
        raise ConfigError(
            f"config key training.start_from: the package {start} has no atom types for "
            f"{missing} (it knows {', '.join(package.type_names)}); a model cannot be "
            "fine-tuned to elements it has no type for: start from a package that covers "
            "them, or from scratch (training.start_from: null)"
        )
    model = given.get("model") if isinstance(given.get("model"), dict) else {}
    for name, value in package.model.items():
        if name in model and model[name] != value:
            raise ConfigError(
                f"config key model.{name}: {model[name]!r} conflicts with the package "
                f"training.start_from ({start}: {value!r}); a fine-tuned model keeps its "
                f"package's architecture: remove model.{name}"
            )
    others = sorted(set(completed["ensemble"]["architectures"]) - {package.architecture})
    if others:
        raise ConfigError(
            f"config key ensemble.architectures: {others} cannot start from the "
            f"{package.architecture} package training.start_from ({start}): set "
            f"ensemble.architectures: [{package.architecture}]"
        )
    return package
