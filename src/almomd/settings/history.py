"""Settings of a running campaign: what each finished iteration ran with, what may not change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from almomd.errors import ConfigError
from almomd.settings import systems
from almomd.settings.campaign import condition_temperatures, walkers

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
        "training.start_from": config["training"].get("start_from"),
        "initial_data.file (given or generated)": config["initial_data"]["file"] is not None,
    }


def recorded_settings(root: Path | str) -> dict[int, dict[str, Any]]:
    """The settings each finished iteration of the campaign in ``root`` ran with."""
    import json

    from almomd import layout

    recorded = {}
    for iteration in layout.iterations(root):
        decision = layout.current_decision(root, iteration)
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


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"section.key": value}``."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


#: where almomd 0.1 kept its bundled NequIP template, inside the installed package
_BUNDLED_BEFORE = ("almomd", "workflow", "nequip", "train.yaml")


def _is_bundled_template(value: Any) -> bool:
    """Whether ``value`` is the path of an installation's bundled NequIP template.

    Campaigns of almomd 0.1 recorded it as an absolute path (inside the package's
    ``workflow/nequip/``), which differs between installations; it is the same
    setting as ``model.template: null``, which campaigns record now.
    """
    return isinstance(value, str) and Path(value).parts[-4:] == _BUNDLED_BEFORE


#: Keys that say how Snakemake was called, not how the campaign runs.
_NOT_SETTINGS = ("plan_all_iterations",)


def changed_settings(root: Path | str, config: dict[str, Any]) -> dict[int, list[str]]:
    """Per finished iteration, the settings it ran with that differ from ``config`` now.

    Each change reads ``key: <then> (now <now>)``; iterations without changes are left out.
    """
    now = flatten(config)
    changes = {}
    for iteration, settings in sorted(recorded_settings(root).items()):
        then = flatten(settings)
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
