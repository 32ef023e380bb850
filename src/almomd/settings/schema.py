"""Load the campaign configuration and validate it against the JSON schema (defaults filled in)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from almomd import deploy
from almomd.errors import ConfigError
from almomd.settings.checks import check_semantics, check_systems


def load_schema(path: Path | None = None) -> dict[str, Any]:
    """Return the JSON schema of the configuration."""
    with open(path or deploy.schema_file()) as handle:
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
    check_systems(completed)
    if check_files:
        check_semantics(completed, Path(base_dir), check_labeler)
    return completed


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
