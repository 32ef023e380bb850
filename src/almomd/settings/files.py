"""The files a configuration names: starting structures, data files, the campaign's elements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from almomd.errors import ConfigError
from almomd.settings import systems


def read_data_frames(config: dict, key: str, base_dir: Path, labeled: bool = False) -> list:
    """Frames of the file named by ``key``; ``labeled`` files may be patterns."""
    from almomd.data.importers import read_labeled

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
    """The starting structure of every system, by name (see :mod:`almomd.settings.systems`)."""
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
            for atoms in read_data_frames(config, key, base_dir, labeled=True):
                symbols |= set(atoms.get_chemical_symbols())
    return sorted(symbols)
