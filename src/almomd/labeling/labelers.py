"""Named labelers: how each code's ASE calculator is built, where it runs, how it fails.

Built-in names:

- in process: ``emt``, ``tblite`` (GFN-xTB), ``gpaw`` (its text output goes to
  the frame's directory);
- file based, run as a subprocess in the frame's own directory: ``espresso``
  (pw.x), ``aims`` (FHI-aims), ``vasp``, ``cp2k``. Their command line comes from
  ``labeler.command`` (default below) where ``{launcher}`` is the job's MPI
  launcher (``srun -n 4`` on Slurm, empty on a workstation). Pseudopotentials and
  species come from the parameters or the usual environment variables:
  ``ESPRESSO_PSEUDO``, ``AIMS_SPECIES_DIR``, ``VASP_PP_PATH`` (read by ASE),
  ``CP2K_DATA_DIR`` (read by CP2K);
- ``module:Class``: any importable ASE calculator (another code, or a trained
  MLIP used as ground truth). It is built once per batch; its ``directory`` is
  set to the frame's directory when it has one.

Codes fail differently (an exception, a non-zero exit status, or only a line in
the output); :func:`check_outputs` turns known "not converged" lines into an
exception so that every failure is handled the same way.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import importlib
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator

from almomd.errors import ConfigError


class NotConverged(RuntimeError):
    """A code finished without an error but its output says it did not converge."""


@dataclass(frozen=True)
class Code:
    """How to build one named labeler."""

    build: Callable[[dict[str, Any], Path, str], Calculator]
    module: str
    package: str
    file_based: bool = False
    command: str = ""
    failure_patterns: tuple[str, ...] = ()


def _emt(parameters: dict[str, Any], directory: Path, command: str) -> Calculator:
    from ase.calculators.emt import EMT

    return EMT(**parameters)


def _tblite(parameters: dict[str, Any], directory: Path, command: str) -> Calculator:
    from tblite.ase import TBLite

    parameters.setdefault("method", "GFN1-xTB")
    parameters.setdefault("verbosity", 0)
    return TBLite(**parameters)


def _gpaw(parameters: dict[str, Any], directory: Path, command: str) -> Calculator:
    from gpaw import GPAW

    parameters.setdefault("txt", str(directory / "gpaw.txt"))
    return GPAW(**parameters)


#: Data directory of a code: (parameter, environment variable); None: no parameter.
DATA_DIRS: dict[str, tuple[str | None, str]] = {
    "espresso": ("pseudo_dir", "ESPRESSO_PSEUDO"),
    "aims": ("species_dir", "AIMS_SPECIES_DIR"),
    "vasp": (None, "VASP_PP_PATH"),
}


def _data_dir(parameters: dict[str, Any], code: str) -> str:
    """Pop the data directory of ``code`` from ``parameters`` (or its variable)."""
    key, variable = DATA_DIRS[code]
    value = (parameters.pop(key, None) if key else None) or os.environ.get(variable)
    where = f"labeler.parameters.{key} or " if key else ""
    if not value:
        raise ConfigError(
            f"labeler {code}: no {key or 'potential directory'}; set {where}the "
            f"environment variable {variable}"
        )
    if not Path(value).is_dir():
        raise ConfigError(
            f"labeler {code}: '{value}' ({where}{variable}) is not a directory; fix it"
        )
    return str(value)


def _espresso(parameters: dict[str, Any], directory: Path, command: str) -> Calculator:
    from ase.calculators.espresso import Espresso, EspressoProfile

    pseudo_dir = _data_dir(parameters, "espresso")
    control = parameters.setdefault("input_data", {}).setdefault("control", {})
    control.setdefault("tprnfor", True)  # pw.x prints forces and stress only when asked
    control.setdefault("tstress", True)
    profile = EspressoProfile(command=command, pseudo_dir=pseudo_dir)
    return Espresso(profile=profile, directory=str(directory), **parameters)


def _aims(parameters: dict[str, Any], directory: Path, command: str) -> Calculator:
    from ase.calculators.aims import Aims, AimsProfile

    species = _data_dir(parameters, "aims")
    profile = AimsProfile(command=command, default_species_directory=species)
    return Aims(profile=profile, directory=str(directory), **parameters)


def _vasp(parameters: dict[str, Any], directory: Path, command: str) -> Calculator:
    from ase.calculators.vasp import Vasp

    _data_dir(parameters, "vasp")  # ASE reads VASP_PP_PATH itself
    return Vasp(command=command, directory=str(directory), **parameters)


def _cp2k(parameters: dict[str, Any], directory: Path, command: str) -> Calculator:
    from ase.calculators.cp2k import CP2K

    return CP2K(command=command, directory=str(directory), **parameters)


CODES: dict[str, Code] = {
    "emt": Code(_emt, "ase.calculators.emt", "ase"),
    "tblite": Code(_tblite, "tblite.ase", "tblite"),
    "gpaw": Code(_gpaw, "gpaw", "gpaw (tests/dft/install.sh shows how: it needs libxc and FFTW)"),
    "espresso": Code(
        _espresso,
        "ase.calculators.espresso",
        "ase",
        file_based=True,
        command="{launcher} pw.x",
        failure_patterns=("convergence NOT achieved",),
    ),
    "aims": Code(_aims, "ase.calculators.aims", "ase", True, "{launcher} aims.x"),
    "vasp": Code(_vasp, "ase.calculators.vasp", "ase", True, "{launcher} vasp_std"),
    "cp2k": Code(
        _cp2k,
        "ase.calculators.cp2k",
        "ase",
        file_based=True,
        command="{launcher} cp2k_shell.psmp",
        failure_patterns=("SCF run NOT converged",),
    ),
}


def _import_class(name: str) -> type:
    """The class of a ``module:Class`` labeler; a module in the campaign directory is found."""
    module_name, _, class_name = name.partition(":")
    campaign = str(Path.cwd())  # the Snakemake working directory: the campaign's
    if campaign not in sys.path:
        sys.path.append(campaign)
    return getattr(importlib.import_module(module_name), class_name)


def check_labeler_name(name: str, key: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a usable labeler."""
    if name in CODES:
        code = CODES[name]
        try:
            importlib.import_module(code.module)
        except ImportError as exc:
            raise ConfigError(
                f"config key {key}: {name} is not installed ({exc}); install {code.package}"
            ) from exc
        return
    if ":" not in name:
        raise ConfigError(
            f"config key {key}: unknown labeler '{name}'; use one of "
            f"{sorted(CODES)} or an ASE calculator as module:Class"
        )
    try:
        _import_class(name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"config key {key}: cannot import '{name}' ({exc}); install the "
            "package or correct module:Class"
        ) from exc


def supported_elements(name: str) -> set[str] | None:
    """Elements labeler ``name`` can label, where it can tell (None: unknown, any).

    EMT has parameters for a few metals and H, C, N, O; GFN1/GFN2-xTB cover H to Rn;
    a ``module:Class`` labeler tells by a ``supported_elements`` class attribute.
    """
    if name == "emt":
        from ase.calculators.emt import parameters

        return set(parameters)
    if name == "tblite":
        from ase.data import chemical_symbols

        return set(chemical_symbols[1:87])
    if ":" in name:
        elements = getattr(_import_class(name), "supported_elements", None)
        return None if elements is None else set(elements)
    return None


def check_labeler(
    name: str, parameters: dict[str, Any], key: str, elements: set[str] | None = None
) -> None:
    """Raise :class:`ConfigError` unless labeler ``name`` can run with ``parameters``.

    ``elements``: the campaign's elements, checked where the labeler can tell.
    """
    check_labeler_name(name, key)
    if name in DATA_DIRS:
        _data_dir(dict(parameters), name)
    supported = supported_elements(name)
    if elements and supported is not None and not elements <= supported:
        raise ConfigError(
            f"config key {key}: {name} cannot label {sorted(elements - supported)} "
            f"(it covers {', '.join(sorted(supported))}); choose a labeler for every element "
            "of the structure and data files"
        )


def with_launcher(parameters: Any, launcher: str) -> Any:
    """Replace ``{launcher}`` in every string of ``parameters`` (nested too)."""
    if isinstance(parameters, str):
        return parameters.replace("{launcher}", launcher).strip()
    if isinstance(parameters, dict):
        return {key: with_launcher(value, launcher) for key, value in parameters.items()}
    if isinstance(parameters, list):
        return [with_launcher(value, launcher) for value in parameters]
    return parameters


def launcher_command(mpi: str | None, tasks: int | None) -> str:
    """The MPI launcher of a job from its ``mpi`` and ``tasks`` resources, shell-quoted.

    ``mpi`` is read as shell words (``srun --mpi=pmix``; quote a path with spaces
    in it); every word, and the task count, is quoted in the result.
    """
    if not mpi:
        return ""
    return shlex.join([*shlex.split(mpi), "-n", str(int(tasks or 1))])


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested dictionaries key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class LabelerSettings:
    """The ``labeler`` config section: how a frame is computed, and in how many batches."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    stress: bool = False
    fallback: dict[str, Any] = field(default_factory=dict)
    failure_patterns: tuple[str, ...] = ()
    keep_files: bool = True
    compress_above_kb: float = 256.0
    n_batches: int = 2
    min_success_fraction: float = 0.5

    @property
    def patterns(self) -> tuple[str, ...]:
        """Output lines that mark a silent failure: the code's own and the config's."""
        code = CODES.get(self.name)
        return (code.failure_patterns if code else ()) + tuple(self.failure_patterns)


class Labeler:
    """Builds the calculator of each frame; one instance labels one batch."""

    def __init__(self, settings: LabelerSettings, launcher: str = ""):
        self.settings = settings
        self.launcher = launcher
        self._custom: dict[bool, Calculator] = {}

    @property
    def name(self) -> str:
        return self.settings.name

    def parameters(self, fallback: bool = False) -> dict[str, Any]:
        """The calculator's keyword arguments (with the fallback merged in if asked)."""
        parameters = self.settings.parameters
        if fallback:
            parameters = deep_merge(parameters, self.settings.fallback)
        return with_launcher(copy.deepcopy(parameters), self.launcher)

    def command(self) -> str:
        """The command line of a file-based code, launcher filled in."""
        code = CODES.get(self.name)
        template = self.settings.command or (code.command if code else "")
        return with_launcher(template, self.launcher)

    def calculator(self, directory: Path, fallback: bool = False) -> Calculator:
        """A calculator that runs (and writes its files) in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.name in CODES:
            return CODES[self.name].build(self.parameters(fallback), directory, self.command())
        if fallback not in self._custom:
            check_labeler_name(self.name, "labeler.name")
            self._custom[fallback] = _import_class(self.name)(**self.parameters(fallback))
        calc = self._custom[fallback]
        if hasattr(calc, "directory"):
            calc.directory = str(directory)
        calc.reset()
        return calc

    def discard(self) -> None:
        """Forget cached calculators (after a failure, start from a fresh state)."""
        for calc in self._custom.values():
            close(calc)
        self._custom.clear()


def close(calc: Calculator) -> None:
    """Stop a calculator's helper process, if it keeps one (CP2K's shell)."""
    closer = getattr(calc, "close", None)
    if callable(closer):
        with contextlib.suppress(Exception):  # closing a broken code must not fail the batch
            closer()


#: Output files larger than this are not searched for failure lines.
MAX_SCANNED_BYTES = 50 * 2**20


def check_outputs(directory: Path, patterns: tuple[str, ...]) -> None:
    """Raise :class:`NotConverged` if a file in ``directory`` contains a pattern."""
    if not patterns or not directory.is_dir():
        return
    expression = re.compile("|".join(re.escape(p) for p in patterns))
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.stat().st_size > MAX_SCANNED_BYTES:
            continue
        text = path.read_text(errors="replace")
        match = expression.search(text)
        if match:
            line = text[text.rfind("\n", 0, match.start()) + 1 : text.find("\n", match.end())]
            raise NotConverged(f"{path.name}: {line.strip()}")


def compress_large_files(directory: Path, above_kb: float) -> None:
    """Gzip every file in ``directory`` larger than ``above_kb`` kilobytes."""
    if not directory.is_dir():
        return
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix != ".gz" and path.stat().st_size > above_kb * 1024:
            with path.open("rb") as source, gzip.open(f"{path}.gz", "wb") as target:
                shutil.copyfileobj(source, target)
            path.unlink()
