"""The repository is the workflow: what the wheel ships, and campaigns in every form.

The top-level workflow/, config/ and profiles/ are the one source; the wheel
ships them byte for byte. A copy of the clone's files is itself a campaign
(``snakemake`` in its root, with both spellings of the Slurm profile), and a
campaign that uses the installed workflow as a Snakemake module plans too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, REPO, run

pytestmark = pytest.mark.workflow

SHIPPED = ("workflow", "config", "profiles")


def tracked(*directories: str) -> list[Path]:
    """The repository's files (committed or not ignored) under ``directories``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "--", *directories],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    return [Path(name) for name in listed if name and (REPO / name).exists()]


def shipped_files(root: Path) -> dict[Path, bytes]:
    return {
        path.relative_to(root): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_ships_the_repository_files_byte_for_byte(installed):
    bin_dir, env = installed
    where = run(
        [bin_dir / "python", "-c", "from almomd import deploy; print(deploy.shipped('config'))"],
        REPO,
        env,
    )
    assert where.returncode == 0, where.stderr
    package = Path(where.stdout.strip()).parent
    assert "site-packages" in package.parts  # the wheel's copy, not the clone
    for name in SHIPPED:
        repository = {path.relative_to(name): (REPO / path).read_bytes() for path in tracked(name)}
        installed_files = shipped_files(package / name)
        assert sorted(installed_files) == sorted(repository), name
        different = [str(p) for p in repository if installed_files[p] != repository[p]]
        assert not different, (name, different)


def test_the_design_layout_is_at_the_top_level_and_nowhere_else():
    for name in ("workflow/Snakefile", "config/config.yaml", "profiles/slurm/config.yaml",
                 "environment.yml"):  # fmt: skip
        assert (REPO / name).is_file(), name
    for directory in ("workflow/rules", "workflow/scripts", "workflow/schemas", "workflow/envs"):
        assert (REPO / directory).is_dir(), directory
    names = {"Snakefile", "environment.yml", "config.schema.yaml", "train.yaml"}

    def misplaced(path: Path) -> bool:
        if path.suffix == ".smk":
            return path.parts[0] != "workflow"
        return path.name in names and path.parts[0] not in SHIPPED and path.parts[0] != path.name

    elsewhere = [str(path) for path in tracked(".") if misplaced(path)]
    assert not elsewhere
    assert (REPO / "slurm").is_symlink() and os.readlink(REPO / "slurm") == "profiles/slurm"


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A copy of the clone's files: what a user has after git clone."""
    root = tmp_path_factory.mktemp("clone")
    for path in tracked("."):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        source = REPO / path
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return root


@pytest.mark.parametrize(
    "how", [["--cores", "1"], ["--profile", "profiles/slurm"], ["--profile", "slurm"]]
)
def test_the_clone_root_is_the_demo_campaign(clone, how):
    result = run([BIN / "snakemake", "--dry-run", *how], clone, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    for rule in ("label_initial_batch", "reference_md", "train_pack_0", "explore", "decide"):
        assert rule in out, rule
    if "slurm" in how[-1]:
        assert "slurm_partition=gpu" in out  # the profile's resources reached the jobs


def test_results_of_the_root_campaign_are_ignored_by_git():
    for name in ("results/iter_0/train.extxyz", "logs/x.log", "benchmarks/iter_0/x.tsv",
                 ".snakemake/x", ".cache/x"):  # fmt: skip
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO)
        assert ignored.returncode == 0, name
    kept = subprocess.run(["git", "check-ignore", "-q", "benchmarks/README.md"], cwd=REPO)
    assert kept.returncode == 1


def test_a_module_campaign_plans_with_the_installed_workflow(tmp_path, installed):
    bin_dir, env = installed
    directory = tmp_path / "module campaign"
    init = run([bin_dir / "almomd", "init", "--module", directory], tmp_path, env)
    assert init.returncode == 0, init.stderr
    snakefile = (directory / "Snakefile").read_text()
    assert "module almomd:" in snakefile and "use rule * from almomd" in snakefile
    for how in (["--cores", "1"], ["--profile", "slurm"]):
        plan = run([bin_dir / "python", "-m", "snakemake", "--dry-run", *how], directory, env)
        out = plan.stdout + plan.stderr
        assert plan.returncode == 0, out[-3000:]
        assert "label_initial_batch" in out and "reference_md" in out
    validate = run([bin_dir / "almomd", "validate"], directory, env)
    assert validate.returncode == 0, validate.stdout + validate.stderr
