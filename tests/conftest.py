"""Shared fixtures: the repository paths and one real run of the .test campaign."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from almomd import deploy

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = "1"


def required(part: str) -> bool:
    """Whether the tests of ``part`` (slurm, dft, gpu) must run here: ALMOMD_REQUIRE=slurm,dft.

    CI sets it, so that a test that cannot run there fails instead of skipping.
    """
    return part in os.environ.get("ALMOMD_REQUIRE", "").replace(" ", "").split(",")


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The real snakemake command line for the workflow in ``workdir``."""
    return [
        str(BIN / "snakemake"),
        "--snakefile", str(deploy.snakefile()),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        *args,
    ]  # fmt: skip


def snakemake(workdir: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run the real snakemake command on the workflow in ``workdir``."""
    command = snakemake_command(workdir, *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def run(command, cwd, env=None, timeout=1200):
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """A fresh virtual environment with almomd installed from its wheel (not editable).

    Its dependencies (torch, NequIP, Snakemake, ...) come from the test
    environment through a .pth line; almomd itself only from the wheel.
    """
    where = tmp_path_factory.mktemp("installed")
    built = run(
        [BIN / "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", where / "dist", REPO],
        cwd=where,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (where / "dist").glob("almomd-*.whl")
    venv = where / "venv"
    assert run([sys.executable, "-m", "venv", venv], where).returncode == 0
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "dependencies.pth").write_text(
        next(p for p in sys.path if p.endswith("site-packages")) + "\n"
    )
    pip = run([venv / "bin" / "pip", "install", "--no-deps", "--no-index", wheel], where)
    assert pip.returncode == 0, pip.stderr[-3000:]
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    found = run(
        [venv / "bin" / "python", "-c", "import almomd; print(almomd.__file__)"], where, env
    )
    assert found.stdout.strip().startswith(str(site)), found
    return venv / "bin", env


def assert_labels_equal(labeled, frames, make_calc, atol, stress_atol=None) -> None:
    """``labeled`` are ``frames`` with the labels of a direct call of ``make_calc()``."""
    assert [a.info["al_id"] for a in labeled] == [a.info["al_id"] for a in frames]
    for atoms, frame in zip(labeled, frames, strict=True):
        reference = frame.copy()
        reference.calc = make_calc()
        assert atoms.get_potential_energy() == pytest.approx(
            reference.get_potential_energy(), abs=atol
        )
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=atol)
        if stress_atol is not None:
            np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), atol=stress_atol)


def load_test_config() -> dict:
    """The .test campaign's config as written (no defaults filled in)."""
    return yaml.safe_load((REPO / ".test" / "config.yaml").read_text())


def test_config_with(change) -> dict:
    """The .test config after ``change(config)`` (a function that edits it in place)."""
    config = load_test_config()
    change(config)
    return config


test_config_with.__test__ = False  # a helper, not a test


def copy_test_config(target: Path) -> Path:
    """Copy the .test campaign (config and structure) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for item in (REPO / ".test").iterdir():
        if item.is_file():
            shutil.copy(item, target / item.name)
    return target


def write_emt_frames(path: Path, n: int) -> Path:
    """``n`` rattled copies of the .test structure (2x2x2) with EMT labels, as extxyz."""
    import ase.io
    from ase.calculators.emt import EMT

    from almomd.data.frames import labeled_copy
    from almomd.labeling.single_points import single_point

    frames = []
    for i in range(n):
        atoms = ase.io.read(REPO / ".test" / "cu.xyz").repeat(2)
        atoms.rattle(0.05, seed=i)
        energy, forces, _ = single_point(atoms, EMT(), False)
        frames.append(labeled_copy(atoms, energy, forces, al_id=i))
    ase.io.write(path, frames, format="extxyz")
    return path


@pytest.fixture(scope="session")
def campaign(tmp_path_factory) -> Path:
    """A finished run of the .test campaign (Cu, EMT labels, 2 iterations)."""
    workdir = copy_test_config(tmp_path_factory.mktemp("campaign"))
    result = snakemake(workdir, "--cores", "2")
    if result.returncode != 0:
        pytest.fail(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return workdir
