"""The workflow as shipped, and campaign directories made from it.

The repository's top-level ``workflow/``, ``config/`` and ``profiles/`` are the
one source: the wheel ships those same files as ``almomd/workflow``,
``almomd/config`` and ``almomd/profiles`` (setuptools' ``package-dir``), and an
editable install (or ``src`` on the path) finds them in the clone. A campaign
runs in any directory either way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: the shipped directories, as packages of almomd
SHIPPED = ("workflow", "config", "profiles")


def shipped(name: str) -> Path:
    """The directory ``name`` (one of :data:`SHIPPED`) of this almomd installation."""
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not shipped with almomd (one of {', '.join(SHIPPED)})")
    package = Path(__file__).resolve().parent
    for candidate in (package / name, package.parents[1] / name):  # the wheel's, the clone's
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"almomd's {name}/ directory is neither in {package} nor in {package.parents[1]}: "
        "reinstall almomd (pip install .)"
    )


def workflow_dir() -> Path:
    """The workflow: Snakefile, rules, scripts, schemas, envs."""
    return shipped("workflow")


def snakefile() -> Path:
    """The workflow's main Snakefile."""
    return workflow_dir() / "Snakefile"


def schema_file() -> Path:
    """The JSON schema of the campaign configuration."""
    return workflow_dir() / "schemas" / "config.schema.yaml"


def demo_dir() -> Path:
    """The demo campaign's settings and structure (CuI, GFN1-xTB labels from tblite)."""
    return shipped("config")


def nequip_template() -> Path:
    """The default NequIP training template (``model.template: null``)."""
    return demo_dir() / "nequip" / "train.yaml"


def slurm_profile() -> Path:
    """The cluster profile: rules onto GPU and CPU partitions."""
    return shipped("profiles") / "slurm"


def workflow_profile() -> Path:
    """The profile of every run in a campaign (``profiles/default``)."""
    return shipped("profiles") / "default"


CAMPAIGN_SNAKEFILE = """\
# An almomd campaign directory. The workflow is the installed almomd package's;
# the settings are config/config.yaml. Run:  snakemake --cores N
# (on Slurm: snakemake --profile slurm). Plan first: almomd budget.
from almomd.deploy import snakefile


include: snakefile()


rule campaign:
    # the default target: every iteration, the status, the report
    default_target: True
    input:
        CAMPAIGN_TARGETS,
"""

MODULE_SNAKEFILE = """\
# An almomd campaign directory using the installed workflow as a Snakemake module
# (the form snakedeploy writes). Run:  snakemake --cores N
from almomd.deploy import snakefile


configfile: "config/config.yaml"


module almomd:
    snakefile:
        snakefile()
    config:
        config


use rule * from almomd
"""


def init_campaign(
    directory: Path | str, force: bool = False, module: bool = False
) -> list[tuple[Path, str]]:
    """Write a campaign directory: Snakefile, demo config and structure, profiles.

    The layout is the repository's: ``config/config.yaml``, ``profiles/slurm``,
    ``profiles/default``, and ``slurm`` (a link to ``profiles/slurm``, so that
    ``snakemake --profile slurm`` finds it). ``module`` writes a Snakefile that
    uses the workflow as a Snakemake module instead of including it. Existing
    files are kept unless ``force``; returns each path with what was done.
    """
    directory = Path(directory)
    profiles = directory / "profiles"
    plan = [
        (directory / "Snakefile", MODULE_SNAKEFILE if module else CAMPAIGN_SNAKEFILE),
        (directory / "config" / "config.yaml", demo_dir() / "config.yaml"),
        (directory / "config" / "CuI.xyz", demo_dir() / "CuI.xyz"),
        (profiles / "slurm" / "config.yaml", slurm_profile() / "config.yaml"),
        (profiles / "default" / "config.yaml", workflow_profile() / "config.yaml"),
    ]
    done = []
    for target, source in plan:
        if target.exists() and not force:
            done.append((target, "kept"))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, str):
            target.write_text(source)
        else:
            shutil.copyfile(source, target)
        done.append((target, "written"))
    link = directory / "slurm"
    if link.is_symlink() or link.exists():
        done.append((link, "kept"))
    else:
        os.symlink(Path("profiles", "slurm"), link, target_is_directory=True)
        done.append((link, "linked to profiles/slurm"))
    return done


def find_profile(profile: str, directory: str) -> Path | None:
    """The profile directory ``profile`` names: a path, or a name in the campaign directory
    or its ``profiles/`` (as ``snakemake --profile NAME`` finds it there)."""
    for candidate in (
        Path(profile),
        Path(directory, profile),
        Path(directory, "profiles", profile),
    ):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def profile_names(directory: str) -> list[str]:
    """The names of the profiles in the campaign directory and its ``profiles/``."""
    found = [
        str(p.parent.relative_to(directory))
        for place in (Path(directory), Path(directory, "profiles"))
        for p in sorted(place.glob("*/config.yaml"))
        if p.parent.name != "config"
    ]
    return list(dict.fromkeys(found))
