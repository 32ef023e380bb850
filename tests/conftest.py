"""Shared fixtures: the repository paths and one real run of the .test campaign."""

from __future__ import annotations

import json
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


def made_once(request, tmp_path_factory, name: str, make) -> Path:
    """The directory ``name`` that ``make(directory)`` fills, made once for all workers.

    Under pytest-xdist the first worker to ask makes it and the others wait for it
    (a lock file in the workers' shared temporary directory); a failed make is
    made again by the next one to ask.
    """
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if getattr(request.config, "workerinput", None) is not None:
        shared = shared.parent
    directory, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            make(directory)
            done.touch()
    return directory


def _install_wheel(where: Path) -> None:
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


def pytest_sessionfinish(session, exitstatus):
    """Stop the Slurm cluster the Slurm tests started, once every worker is done."""
    if getattr(session.config, "workerinput", None) is not None:
        return  # a pytest-xdist worker: the controller stops it
    stop = REPO / "tests" / "slurm" / "stop-cluster.sh"
    state = Path(os.environ.get("ALMOMD_SLURM_STATE", "/var/tmp/almomd-slurm")) / "pids"
    if state.is_file() and state.stat().st_size:
        subprocess.run(["bash", str(stop)], timeout=120, capture_output=True)


@pytest.fixture(scope="session")
def installed(tmp_path_factory, request):
    """A fresh virtual environment with almomd installed from its wheel (not editable).

    Its dependencies (torch, NequIP, Snakemake, ...) come from the test
    environment through a .pth line; almomd itself only from the wheel.
    """
    where = made_once(request, tmp_path_factory, "installed", _install_wheel)
    venv = where / "venv"
    site = next((venv / "lib").glob("python3*/site-packages"))
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


def pytest_collection_modifyitems(config, items):
    """The tests that share a module's campaign first (the Slurm ones first of all), so
    that the two workers start the long ones early and share out the short ones last."""
    items.sort(key=lambda item: (item.get_closest_marker("slurm") is None,
                                 item.get_closest_marker("xdist_group") is None))  # fmt: skip


def pytest_itemcollected(item):
    """Under pytest-xdist (``make test``: ``-n 3 --dist loadgroup``) the tests of a module
    with a module-scoped fixture (a whole campaign, a Slurm cluster) run in one worker,
    so that the fixture is made once (marked as each is collected: xdist reads the
    groups before other hooks could mark them)."""
    fixtures = getattr(item, "_fixtureinfo", None)
    if fixtures is None:
        return
    if any(defs[-1].scope == "module" for defs in fixtures.name2fixturedefs.values()):
        item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def _run_test_campaign(workdir: Path) -> None:
    copy_test_config(workdir)
    result = snakemake(workdir, "--cores", "2")
    if result.returncode != 0:
        pytest.fail(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")


@pytest.fixture(scope="session")
def campaign(tmp_path_factory, request) -> Path:
    """A finished run of the .test campaign (Cu, EMT labels, 2 iterations), made once for
    all workers: tests read it, or copy it to change it."""
    return made_once(request, tmp_path_factory, "campaign", _run_test_campaign)


class CampaignForm:
    """A copy of the finished .test campaign in one of its three forms, run as a user would.

    ``repository``: the clone's root (its ``workflow/`` and ``profiles/``); ``init``: a
    directory made by ``almomd init``; ``module``: by ``almomd init --module``. In each,
    plain ``snakemake`` runs in the directory with ``config/config.yaml``.
    """

    FORMS = ("repository", "init", "module")

    def __init__(self, finished: Path, root: Path, form: str) -> None:
        self.root, self.form = root, form
        if form == "repository":
            root.mkdir(parents=True)
            shutil.copytree(REPO / "workflow", root / "workflow")
            shutil.copytree(REPO / "profiles", root / "profiles", symlinks=True)
        else:
            init = [BIN / "almomd", "init", root] + (["--module"] if form == "module" else [])
            assert run(init, root.parent).returncode == 0
        self.config = root / "config" / "config.yaml"
        self.config.parent.mkdir(exist_ok=True)
        shutil.copy(finished / "config.yaml", self.config)
        shutil.copy(finished / "cu.xyz", root / "cu.xyz")
        for part in ("results", "logs", "benchmarks"):
            shutil.copytree(finished / part, root / part)
        #: the rule of the campaign's default target
        self.target_rule = "campaign" if form == "init" else "all"

    def snakemake(self, *args: str) -> subprocess.CompletedProcess:
        return run([BIN / "snakemake", *args], self.root)

    def almomd(self, command: str, *args: str) -> subprocess.CompletedProcess:
        return run([BIN / "almomd", command, "--configfile", self.config, *args], self.root)

    def status(self, *args: str) -> subprocess.CompletedProcess:
        return self.almomd("status", *args)

    def edit(self, change) -> None:
        """Change the config: ``change(config)`` edits it in place."""
        config = yaml.safe_load(self.config.read_text())
        change(config)
        self.config.write_text(yaml.safe_dump(config))

    def decision(self, iteration: int) -> dict:
        """The iteration's decision as it stands."""
        from almomd import layout

        return json.loads(layout.current_decision(self.root, iteration).read_text())


@pytest.fixture(params=CampaignForm.FORMS)
def campaign_form(request, campaign, tmp_path) -> CampaignForm:
    """The finished .test campaign in each of its three forms (a private copy)."""
    return CampaignForm(campaign, tmp_path / request.param, request.param)
