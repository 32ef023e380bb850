"""Checks of the configuration that a schema cannot express: files, labeler, elements,
combinations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from almomd.ensemble.uncertainty import NOVELTY_METRICS
from almomd.errors import ConfigError
from almomd.settings import systems
from almomd.settings.campaign import conditions
from almomd.settings.files import chemical_symbols, read_data_frames, structures
from almomd.settings.packages import check_start_from, read_package


def check_systems(config: dict[str, Any]) -> None:
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


def check_semantics(
    config: dict[str, Any], base_dir: Path, labeler: bool = True, given: Any = None
) -> None:
    """What a schema cannot check (``given``: the configuration as the user wrote it,
    before defaults, for :func:`~almomd.settings.packages.check_start_from`)."""
    from almomd.labeling.labelers import check_labeler

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
        if training[key] is not None and not (training["warm_start"] or training["start_from"]):
            raise ConfigError(
                f"config key training.{key}: applies to members that start from a trained "
                "model only; set training.warm_start: true or training.start_from, or remove "
                "the key"
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
    if initial["file"] is None and initial["md_fraction"] > 0:
        _check_initial_md(config, base_dir, symbols, labeler)
    check_start_from(given, config, base_dir, symbols)
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
    metric = config["uncertainty"]["metric"]
    if metric in NOVELTY_METRICS:
        if config["uncertainty"]["kind"] != "absolute":
            raise ConfigError(
                f"config key uncertainty.kind: {metric} measures novelty, a distance, which "
                "has no relative kind: set uncertainty.kind: absolute, or a spread metric "
                "(uncertainty.metric: force_max, force_mean or energy) for relative"
            )
        if config["training"]["compile"]:
            raise ConfigError(
                f"config key uncertainty.metric: {metric} needs the members' node features, "
                "which AOTInductor members (training.compile: true) do not give; set "
                "training.compile: false or choose force_max"
            )
    if config["exploration"]["walkers_per_job"] > 1 and config["training"]["compile"]:
        raise ConfigError(
            "config key exploration.walkers_per_job: walkers in one pass batch their "
            "structures through packaged members; AOTInductor members (training.compile: "
            "true) take one structure at a time: set training.compile: false or "
            "exploration.walkers_per_job: 1"
        )
    if config["selection"]["diversity"] == "features" and config["training"]["compile"]:
        raise ConfigError(
            "config key selection.diversity: features compares the members' node features, "
            "which AOTInductor members (training.compile: true) do not give; set "
            "training.compile: false or selection.diversity: time"
        )
    _check_heldout(config, base_dir)
    _check_observables(config, base_dir)
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
        read_data_frames(config, "heldout.file", base_dir, labeled=True)
    elif held["file"] is not None:
        raise ConfigError(
            "config key heldout.file: only used with heldout.source: file "
            f"(it is {held['source']}); "
            "set heldout.source: file or remove heldout.file"
        )
    if held["source"] == "reference_md":
        trajectories = held["trajectories_per_condition"]
        if held["frames_per_condition"] < 2 * trajectories:
            raise ConfigError(
                "config key heldout.frames_per_condition: each of the "
                f"{trajectories} trajectories per condition (heldout.trajectories_per_condition) "
                f"needs at least 2 frames; give at least {2 * trajectories} or fewer trajectories"
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


def _check_observables(config: dict[str, Any], base_dir: Path) -> None:
    chosen = config["observables"]
    given = chosen["reference"]
    if given is not None:
        count = len(conditions(config))
        if len(given) != count:
            raise ConfigError(
                f"config key observables.reference: {len(given)} files for {count} exploration "
                "conditions; give one trajectory per condition, in their order"
            )
        own = [f for f in given if not str(f).endswith(".npz")]  # .npz: almomd's, timed
        if own and chosen["reference_timestep"] is None:
            raise ConfigError(
                "config key observables.reference_timestep: the time between the frames of "
                "observables.reference (fs) is needed; give it"
            )
        for index, value in enumerate(given):
            if not (base_dir / value).is_file():
                raise ConfigError(
                    f"config key observables.reference[{index}]: file '{value}' does not exist "
                    f"(paths are relative to {base_dir.resolve()}); fix the path"
                )
    wanted = config["convergence"]["observables"]
    if not wanted:
        return
    if not config["observables"]["enabled"]:
        raise ConfigError(
            f"config key convergence.observables: {', '.join(wanted)} must agree, but "
            "observables.enabled is false; enable the observables or remove them from "
            "convergence.observables"
        )
    compared = [name for name in wanted if name != "stability"]
    if compared and config["heldout"]["source"] != "reference_md" and given is None:
        raise ConfigError(
            f"config key convergence.observables: {', '.join(compared)} are judged against "
            "reference dynamics, which heldout.source: reference_md keeps (it is "
            f"{config['heldout']['source']}); set it, give your own as observables.reference, "
            "or keep only stability"
        )


def _check_initial_md(config: dict[str, Any], base_dir: Path, symbols: set, labeler: bool) -> None:
    """The initial MD's calculator: a package that exists and covers the elements, or a
    labeler name; features to pick from only with a package."""
    from almomd.labeling.labelers import check_labeler_name
    from almomd.settings.sections import Settings

    initial, key = config["initial_data"], "initial_data.md_calculator"
    name = initial["md_calculator"]
    if name == "start_from" and config["training"]["start_from"] is None:
        raise ConfigError(
            f"config key {key}: start_from runs the initial MD with training.start_from's "
            "package, but none is given: set training.start_from, or name a package or a labeler"
        )
    package = Settings.from_config(config).initial_md_package()
    if package is not None:
        missing = sorted(symbols - set(read_package(base_dir / package, key).type_names))
        if missing:
            raise ConfigError(
                f"config key {key}: the package {package} has no atom types for {missing}; "
                "run the initial MD with a package or a labeler that knows them"
            )
        return
    if initial["md_pool"] > 1:
        raise ConfigError(
            f"config key initial_data.md_pool: picks snapshots in a package's features, but "
            f"{key} is {name!r}, a labeler: name a package (.nequip.zip, or start_from) or set "
            "md_pool: 1"
        )
    if labeler:
        check_labeler_name(name, key)
