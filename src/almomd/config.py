"""Load, validate and complete the campaign configuration.

The configuration is checked against the workflow's ``schemas/config.schema.yaml``
(types, bounds, unknown keys) and then for what a schema cannot express (files
that must exist, a labeler that must be importable, elements that must match).
Defaults from the schema are filled in. Every error names the offending key and
says how to fix it, and is raised before any job runs.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from almomd import resources, systems


class ConfigError(ValueError):
    """A configuration problem, with the key that causes it and how to fix it."""


@dataclass(frozen=True)
class Walker:
    """One exploration walker: a system, a temperature and a replica number."""

    index: int
    temperature: float
    replica: int
    system: str


@dataclass(frozen=True)
class Condition:
    """One exploration condition: what a reference MD has to sample."""

    index: int
    temperature: float
    pressure: float | None
    system: str
    #: the system's name is part of the label when the campaign has several
    named: bool = False

    @property
    def label(self) -> str:
        """Short name used in tables (``600 K``, ``600 K, 1 GPa``, ``vacancy 600 K``)."""
        text = f"{self.temperature:g} K"
        text = text if self.pressure is None else f"{text}, {self.pressure:g} GPa"
        return f"{self.system} {text}" if self.named else text


def conditions(config: dict[str, Any]) -> list[Condition]:
    """The distinct exploration conditions per system (replicas of a temperature share one).

    A temperature ramp's end (``exploration.temperature_end``) is a condition too.
    """
    exploration = config["exploration"]
    pressure = exploration["pressure"] if exploration["thermostat"] == "npt" else None
    named = len(config["systems"]) > 1
    found: list[Condition] = []
    for name in systems.names(config):
        for temperature in condition_temperatures(systems.exploration(config, name)):
            found.append(Condition(len(found), temperature, pressure, name, named))
    return found


def load_schema(path: Path | None = None) -> dict[str, Any]:
    """Return the JSON schema of the configuration."""
    with open(path or resources.schema_file()) as handle:
        return yaml.safe_load(handle)


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that it fills in schema defaults."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft7Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts: list[str] = []
    for part in error.absolute_path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        prefix = "" if key == "<top level>" else key + "."
        names = ", ".join(prefix + name for name in unknown)
        return (
            f"unknown config key {names}: remove it or correct its spelling "
            f"(allowed here: {', '.join(allowed)})"
        )
    if error.validator == "required":
        missing = error.message.split("'")[1]
        prefix = "" if key == "<top level>" else key + "."
        return f"config key {prefix}{missing} is required but missing: add it"
    return f"config key {key}: {error.message}"


def validate_config(
    config: dict[str, Any],
    base_dir: Path | str = ".",
    check_files: bool = True,
    check_labeler: bool = True,
) -> dict[str, Any]:
    """Validate ``config``, fill in defaults and return a completed copy.

    Parameters
    ----------
    config
        The configuration as loaded from YAML.
    base_dir
        Directory that relative paths in the configuration refer to (the
        Snakemake working directory).
    check_files
        Also check that referenced files exist and can be read.
    check_labeler
        Also check that the labeler can be built and labels every element
        (not needed by steps that label nothing, such as production MD).

    Raises
    ------
    ConfigError
        On the first problem found, naming the key and the fix.
    """
    completed = copy.deepcopy(dict(config))
    errors = sorted(
        _Validator(load_schema()).iter_errors(completed),
        key=lambda e: (len(e.absolute_path), _key_path(e)),
    )
    if errors:
        raise ConfigError(_describe(errors[0]))
    _check_systems(completed)
    if check_files:
        _check_semantics(completed, Path(base_dir), check_labeler)
    return completed


def _check_systems(config: dict[str, Any]) -> None:
    """Replace ``system`` by the list ``systems`` and check the systems' names and origins."""
    if (config.get("system") is None) == (config.get("systems") is None):
        raise ConfigError(
            "config keys system and systems: give exactly one of them (system for one "
            "structure, systems for a list of named structures)"
        )
    config["systems"] = systems.normalized(config)
    config.pop("system", None)
    seen: list[str] = []
    for entry in config["systems"]:
        key = f"systems[{entry['name']}]"
        if entry["name"] in seen:
            raise ConfigError(f"config key {key}: the name is used twice; give each its own")
        derived = entry.get("from") is not None
        if derived == ("structure" in entry):
            raise ConfigError(
                f"config key {key}: give either structure (a file) or from (the name of a "
                "system listed before it)"
            )
        if derived and entry["from"] not in seen:
            raise ConfigError(
                f"config key {key}.from: {entry['from']!r} is not a system listed before it "
                f"(listed before: {', '.join(seen) or 'none'}); fix the name or the order"
            )
        changes = [k for k in ("substitute", "remove", "insert", "supercell") if k in entry]
        if derived and "supercell" in entry:
            raise ConfigError(
                f"config key {key}.supercell: a derived system has its parent's cell; remove it"
            )
        if not derived and changes and changes != ["supercell"]:
            raise ConfigError(
                f"config key {key}.{changes[0]}: changes the structure of the system named in "
                "from; add from: <system> or remove the key"
            )
        seen.append(entry["name"])


def load_config(path: Path | str, check_files: bool = True) -> dict[str, Any]:
    """Read a YAML configuration file and validate it (see :func:`validate_config`)."""
    path = Path(path)
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    return validate_config(raw, Path.cwd(), check_files)


def _require_file(config: dict, key: str, base_dir: Path) -> Path:
    section, name = key.split(".")
    value = config[section][name]
    path = base_dir / value
    if not path.is_file():
        raise ConfigError(
            f"config key {key}: file '{value}' does not exist "
            f"(paths are relative to {base_dir.resolve()}); fix the path"
        )
    return path


def _read_frames(config: dict, key: str, base_dir: Path, labeled: bool = False) -> list:
    """Frames of the file named by ``key``; ``labeled`` files may be patterns."""
    from almomd.importers import read_labeled

    section, name = key.split(".")
    if not labeled:
        return [_read_file(base_dir, config[section][name], key)]
    path = base_dir / config[section][name]
    try:  # one file, or a pattern such as calcs/*/aims.out
        frames = read_labeled(path)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config key {key}: {exc} (paths are relative to {base_dir.resolve()}); fix the path"
        ) from exc
    except Exception as exc:  # any reader error means an unusable file
        raise ConfigError(f"config key {key}: cannot read '{path}': {exc}") from exc
    if not frames:
        raise ConfigError(f"config key {key}: '{path}' holds no structure")
    return frames


def _read_file(base_dir: Path, value: str, key: str) -> Any:
    """The first structure of the file ``value`` that config key ``key`` names."""
    import ase.io

    path = base_dir / value
    if not path.is_file():
        raise ConfigError(
            f"config key {key}: file '{value}' does not exist "
            f"(paths are relative to {base_dir.resolve()}); fix the path"
        )
    try:
        frames = ase.io.read(path, index=":")
    except Exception as exc:  # any reader error means an unusable file
        raise ConfigError(f"config key {key}: cannot read '{path}': {exc}") from exc
    if not frames:
        raise ConfigError(f"config key {key}: '{path}' holds no structure")
    return frames[0]


def structures(config: dict[str, Any], base_dir: Path | str = ".") -> dict[str, Any]:
    """The starting structure of every system, by name (see :mod:`almomd.systems`)."""
    base_dir = Path(base_dir)
    built = {}
    for name in systems.names(config):
        key = systems.key(config, name) + ".structure"
        built[name] = systems.structure(
            config, name, lambda value, key=key: _read_file(base_dir, value, key)
        )
    return built


def chemical_symbols(config: dict[str, Any], base_dir: Path | str = ".") -> list[str]:
    """The campaign's elements: those of the structures and of every given data file.

    The one place they are computed (validation and training both use it); data
    files may be patterns such as ``calcs/*/aims.out``.
    """
    base_dir = Path(base_dir)
    symbols = {s for atoms in structures(config, base_dir).values() for s in atoms.symbols}
    for key in ("initial_data.file", "test_set.file", "heldout.file"):
        section, name = key.split(".")
        if config.get(section, {}).get(name) is not None:
            for atoms in _read_frames(config, key, base_dir, labeled=True):
                symbols |= set(atoms.get_chemical_symbols())
    return sorted(symbols)


def _check_structure(structure: Any, key: str) -> None:
    import numpy as np

    if not np.isfinite(structure.positions).all():
        raise ConfigError(
            f"config key {key}: the structure has non-finite (NaN or inf) positions; fix the file"
        )
    if not np.isfinite(structure.cell.array).all():
        raise ConfigError(f"config key {key}: the cell has non-finite entries; fix the file")
    if len(structure) == 0:
        raise ConfigError(f"config key {key}: the structure has no atoms; fix it")


def _check_semantics(config: dict[str, Any], base_dir: Path, labeler: bool = True) -> None:
    from almomd.labelers import check_labeler, check_labeler_name

    built = structures(config, base_dir)
    for name, structure in built.items():
        _check_structure(structure, systems.key(config, name) + ".structure")
    if config["model"]["template"] is not None:  # None: the bundled template
        _require_file(config, "model.template", base_dir)
    symbols = set(chemical_symbols(config, base_dir))
    references = config["model"]["reference_energies"]
    if references is not None:
        missing = sorted(symbols - set(references))
        if missing:
            raise ConfigError(
                f"config key model.reference_energies: no value for {missing}; give one per element"
            )
    if config["training"]["stress_weight"] > 0 and not config["labeler"]["stress"]:
        raise ConfigError(
            "config key training.stress_weight: stress is trained but not labeled; "
            "set labeler.stress: true or training.stress_weight: 0"
        )
    training = config["training"]
    for key in ("warm_start_epochs", "warm_start_learning_rate"):
        if training[key] is not None and not training["warm_start"]:
            raise ConfigError(
                f"config key training.{key}: applies to warm-started members only; "
                "set training.warm_start: true or remove the key"
            )
    if "allegro" in config["ensemble"]["architectures"]:
        try:
            import allegro  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "config key ensemble.architectures: allegro needs the nequip-allegro package "
                f"({exc}); pip install nequip-allegro, or use [nequip]"
            ) from exc
    labeler_settings = config["labeler"]
    if labeler:
        check_labeler(
            labeler_settings["name"], labeler_settings["parameters"], "labeler.name", symbols
        )
    initial = config["initial_data"]
    if labeler and initial["file"] is None and initial["md_fraction"] > 0:
        check_labeler_name(initial["md_calculator"], "initial_data.md_calculator")
    if config["exploration"]["torch_compile"] is True:  # auto compiles only where it can
        if config["training"]["compile"]:
            raise ConfigError(
                "config key exploration.torch_compile: compiles the batched ensemble of packaged "
                "members, but training.compile makes AOTInductor members that run one by one; "
                "set one of them to false"
            )
        for name, structure in built.items():
            if not structure.pbc.all() or structure.cell.rank < 3:
                raise ConfigError(
                    "config key exploration.torch_compile: needs periodic structures (pbc and "
                    f"a full cell; system {name} has not) to pad its edge list; set it to false"
                )
    _check_heldout(config, base_dir)
    production_system = config["production"]["system"]
    if production_system is not None and production_system not in built:
        raise ConfigError(
            f"config key production.system: {production_system!r} is not a system of the "
            f"campaign ({', '.join(built)}); give one of them or null"
        )
    generated_test = config["test_set"]["file"] is None and initial["file"] is None
    if generated_test and config["test_set"]["size"] >= initial["n_frames"] - 1:
        raise ConfigError(
            "config key test_set.size: must be smaller than "
            "initial_data.n_frames - 1 so that frames remain for training"
        )


def _check_heldout(config: dict[str, Any], base_dir: Path) -> None:
    held = config["heldout"]
    if held["source"] == "file":
        if held["file"] is None:
            raise ConfigError(
                "config key heldout.file: heldout.source is file but no file is given; "
                "give your labeled frames at the exploration conditions, or choose another source"
            )
        _read_frames(config, "heldout.file", base_dir, labeled=True)
    elif held["file"] is not None:
        raise ConfigError(
            "config key heldout.file: only used with heldout.source: file "
            f"(it is {held['source']}); "
            "set heldout.source: file or remove heldout.file"
        )
    metric = config["uncertainty"]["metric"]
    target_key = "energy_rmse" if metric == "energy" else "force_rmse"
    if (
        config["selection"]["acceptance"] == "calibrated"
        and config["convergence"][target_key] is None
    ):
        raise ConfigError(
            f"config key selection.acceptance: calibrated needs the error target "
            f"convergence.{target_key} (the error a selected frame likely exceeds); set it or "
            "use acceptance: erf"
        )


def from_section(cls: type, section: dict[str, Any], **given: Any) -> Any:
    """Build the settings dataclass ``cls`` from a config section (plus ``given``)."""
    names = {f.name for f in dataclasses.fields(cls)} - set(given)
    return cls(**{name: section[name] for name in names}, **given)


def condition_temperatures(exploration: dict[str, Any]) -> list[float]:
    """The distinct temperatures explored (K): the walkers' and a ramp's end."""
    temperatures = {float(t) for t in exploration["temperatures"]}
    if exploration.get("temperature_end") is not None:
        temperatures.add(float(exploration["temperature_end"]))
    return sorted(temperatures)


def walkers(config: dict[str, Any]) -> list[Walker]:
    """Return the exploration walkers: per system, every temperature times every replica."""
    found = []
    for name in systems.names(config):
        exploration = systems.exploration(config, name)
        pairs = itertools.product(exploration["temperatures"], range(exploration["replicas"]))
        found += [Walker(len(found) + i, float(t), r, name) for i, (t, r) in enumerate(pairs)]
    return found


def member_architecture(config: dict[str, Any], seed_index: int) -> str:
    """The architecture of the members with seed ``seed_index``: the list taken in turn."""
    architectures = config["ensemble"]["architectures"]
    return architectures[seed_index % len(architectures)]


def members(config: dict[str, Any]) -> list[tuple[int, int]]:
    """Return the ensemble members as (subset, seed) index pairs."""
    ensemble = config["ensemble"]
    return [(k, m) for k in range(ensemble["n_subsets"]) for m in range(ensemble["n_seeds"])]


def job_device(config: dict[str, Any]) -> str:
    """The torch device of this job: ``training.device``, ``auto`` resolved here.

    ``auto`` is ``cuda`` where the job sees a GPU (the profile gave it one) and
    ``cpu`` elsewhere. Raises :class:`ConfigError` for ``cuda`` without one.
    """
    wanted = config["training"]["device"]
    if wanted == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if wanted == "auto":
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "not set")
    raise ConfigError(
        "training.device is cuda, but this job sees no GPU (torch.cuda.is_available() is "
        f"False; CUDA_VISIBLE_DEVICES={visible}): give the rule a GPU in the profile "
        "(set-resources: gpu: 1 and a GPU partition), or set training.device: auto to run "
        "where there is none on the CPU"
    )


def member_packs(config: dict[str, Any]) -> list[list[tuple[int, int]]]:
    """The ensemble members of each training job: ``training.members_per_job`` at a time.

    In (subset, seed) order; the last job takes what is left.
    """
    found, size = members(config), config["training"]["members_per_job"]
    return [found[start : start + size] for start in range(0, len(found), size)]


# Settings of a running campaign. A changed setting applies to the steps not yet
# run (the campaign's profiles/default sets rerun-triggers to mtime and input).
# Settings that decide which jobs exist are the exception: changing them after an
# iteration finished would make Snakemake redo finished iterations, so it is refused.


def job_layout(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide which jobs and files an iteration has."""
    n_conditions = sum(
        len(condition_temperatures(systems.exploration(config, name)))
        for name in systems.names(config)
    )
    return {
        "systems (names)": systems.names(config),
        "ensemble.n_subsets": config["ensemble"]["n_subsets"],
        "ensemble.n_seeds": config["ensemble"]["n_seeds"],
        "labeler.n_batches": config["labeler"]["n_batches"],
        "exploration walkers (systems x temperatures x replicas)": len(walkers(config)),
        "exploration conditions (systems x distinct temperatures)": n_conditions,
        "heldout.source": config["heldout"]["source"],
        "training.compile": config["training"]["compile"],
        "training.warm_start": config["training"]["warm_start"],
        "initial_data.file (given or generated)": config["initial_data"]["file"] is not None,
    }


def recorded_settings(root: Path | str) -> dict[int, dict[str, Any]]:
    """The settings each finished iteration of the campaign in ``root`` ran with."""
    import json

    from almomd import layout

    recorded = {}
    for iteration in layout.iterations(root):
        decision = layout.path(layout.DECISION, root, iteration=iteration)
        if decision.is_file():
            settings = json.loads(decision.read_text()).get("settings")
            if settings:
                recorded[iteration] = settings
    return recorded


def check_unchanged_layout(config: dict[str, Any], root: Path | str) -> None:
    """Raise :class:`ConfigError` if a setting that decides the jobs changed mid-campaign."""
    current = job_layout(config)
    for iteration, settings in sorted(recorded_settings(root).items()):
        try:
            before = job_layout(settings)
        except (KeyError, TypeError):  # settings of an older version: nothing to compare
            continue
        for key, value in current.items():
            if before[key] != value:
                raise ConfigError(
                    f"config key {key}: is {value!r} but iteration {iteration} finished with "
                    f"{before[key]!r}. It decides which jobs an iteration has, so changing it "
                    "would redo the finished iterations: set it back, or start a new campaign "
                    "in another directory (almomd init DIR; initial_data.file can take this "
                    "campaign's training set)"
                )


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _is_bundled_template(value: Any) -> bool:
    """Whether ``value`` is the path of an installation's bundled NequIP template.

    Campaigns recorded it as an absolute path, which differs between
    installations of almomd; it is the same setting as ``model.template: null``.
    """
    bundled = resources.nequip_template().parts[-4:]  # almomd/workflow/nequip/train.yaml
    return isinstance(value, str) and Path(value).parts[-4:] == bundled


#: Keys that say how Snakemake was called, not how the campaign runs.
_NOT_SETTINGS = ("plan_all_iterations",)


def changed_settings(root: Path | str, config: dict[str, Any]) -> dict[int, list[str]]:
    """Per finished iteration, the settings it ran with that differ from ``config`` now.

    Each change reads ``key: <then> (now <now>)``; iterations without changes are left out.
    """
    now = _flatten(config)
    changes = {}
    for iteration, settings in sorted(recorded_settings(root).items()):
        then = _flatten(settings)
        if _is_bundled_template(then.get("model.template")):  # as recorded before
            then["model.template"] = None
        lines = [
            f"{key}: {then.get(key)!r} (now {now.get(key)!r})"
            for key in sorted(set(then) | set(now))
            if key not in _NOT_SETTINGS and then.get(key) != now.get(key)
        ]
        if lines:
            changes[iteration] = lines
    return changes
