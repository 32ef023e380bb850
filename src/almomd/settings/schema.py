"""Load the campaign configuration and validate it against the JSON schema (defaults filled in)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
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
    fix = _FIXES.get(error.validator)
    if fix is not None:
        return f"config key {key}: {error.instance!r} {fix(error.validator_value)}"
    return f"config key {key}: {error.message}"


#: How a value out of the schema's range is described, with the fix.
_FIXES = {
    "minimum": lambda limit: f"is below the minimum {limit}: set a value >= {limit}",
    "exclusiveMinimum": lambda limit: f"is not above {limit}: set a value > {limit}",
    "maximum": lambda limit: f"is above the maximum {limit}: set a value <= {limit}",
    "exclusiveMaximum": lambda limit: f"is not below {limit}: set a value < {limit}",
    "enum": lambda allowed: "is not allowed: set one of " + ", ".join(map(repr, allowed)),
}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first:
                raise ConfigError(
                    f"key {key!r} is given twice, at lines {first[key]} and {line} "
                    "(YAML would silently keep the last): keep one"
                )
            first[key] = line
        return super().construct_mapping(node, deep)


def read_config_file(path: Path | str) -> Any:
    """The YAML of config file ``path``, refusing what YAML would silently accept.

    Raises ConfigError naming the file: missing, not YAML, or a key given twice.
    """
    path = Path(path)
    try:
        with open(path) as handle:
            return yaml.load(handle, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"config file {path} is a directory: give the YAML file") from exc
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc


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
    if not isinstance(config, Mapping):
        names = {list: "a list", str: "a text", int: "a number", float: "a number"}
        kind = "empty" if config is None else names.get(type(config), type(config).__name__)
        raise ConfigError(
            f"the configuration is {kind}, not a mapping of sections: write it as "
            "`section:` lines with `key: value` under each (system:, labeler:, ...; "
            "see config/README.md)"
        )
    completed = copy.deepcopy(dict(config))
    errors = sorted(
        _Validator(load_schema()).iter_errors(completed),
        key=lambda e: (len(e.absolute_path), _key_path(e)),
    )
    if errors:
        raise ConfigError(_describe(errors[0]))
    check_systems(completed)
    if check_files:
        check_semantics(completed, Path(base_dir), check_labeler, config)
    return completed


def load_config(path: Path | str, check_files: bool = True) -> dict[str, Any]:
    """Read a YAML configuration file and validate it (see :func:`validate_config`)."""
    raw = read_config_file(path)
    try:
        return validate_config({} if raw is None else raw, Path.cwd(), check_files)
    except ConfigError as error:
        if isinstance(raw, Mapping):
            raise
        raise ConfigError(f"config file {path}: {error}") from None
