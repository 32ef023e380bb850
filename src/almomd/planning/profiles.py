"""What a Snakemake profile gives the planned jobs: its settings and their resources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from almomd.planning.jobs import PACKED, PlanError, PlannedJob, _scaled


def _pairs(items: Any, what: str) -> dict[str, Any]:
    """A profile's ``key: value`` mapping, or its command-line form ``["key=value", ...]``."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    if isinstance(items, str):
        items = items.split()
    pairs = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"{what}: {item!r} is not name=value")
        pairs[name.strip()] = value.strip()
    return pairs


def resolve_resources(jobs: Iterable[PlannedJob], profile: Mapping[str, Any] | None) -> None:
    """Give ``jobs`` the resources of a Snakemake ``profile`` (its config.yaml).

    As Snakemake does: ``set-resources`` of the rule override the rule's own,
    which override ``default-resources``. (Local rules get them too, as in
    Snakemake's dry run; they are not submitted.) Threads stay the rules' own
    (1 for every submitted rule).
    """
    if not profile:
        return
    defaults = _pairs(profile.get("default-resources"), "default-resources")
    per_rule: dict[str, dict] = {}
    given = profile.get("set-resources") or {}
    if isinstance(given, Mapping):
        per_rule = {rule: dict(values) for rule, values in given.items()}
    else:  # the command-line form: ["rule:name=value", ...]
        for item in given:
            rule, _, assignment = str(item).partition(":")
            per_rule.setdefault(rule, {}).update(_pairs([assignment], "set-resources"))
    for job in jobs:
        own = job.resources
        if job.family in PACKED:  # the single job's set-resources, for the whole pack
            single = per_rule.get(PACKED[job.family][0], {})
            own = {**own, **_scaled(single, job.members, job.family)}
        job.resources = {**defaults, **own, **per_rule.get(job.rule, {})}


def read_profile(profile: Path | str | None) -> dict | None:
    """The profile's settings (its config.yaml), None without one."""
    if profile is None:
        return None
    path = Path(profile, "config.yaml")
    if not path.is_file():
        raise PlanError(f"profile {profile} is not a directory with a config.yaml")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise PlanError(f"{path} is not valid YAML: {error}") from None
