"""Files shipped inside the package: the workflow, its schema and templates, the demo campaign.

Everything is found through :mod:`importlib.resources`, so a plain (not
editable) ``pip install`` runs campaigns in any directory.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path


def _package_path(*parts: str) -> Path:
    return Path(str(files("almomd").joinpath(*parts)))


def workflow_dir() -> Path:
    """The directory of the installed workflow (Snakefile, rules, scripts, schemas)."""
    return _package_path("workflow")


def snakefile() -> Path:
    """The workflow's main Snakefile."""
    return workflow_dir() / "Snakefile"


def schema_file() -> Path:
    """The JSON schema of the campaign configuration."""
    return workflow_dir() / "schemas" / "config.schema.yaml"


def nequip_template() -> Path:
    """The default NequIP training template (``model.template``)."""
    return workflow_dir() / "nequip" / "train.yaml"


def slurm_profile() -> Path:
    """The Slurm profile that ``almomd init`` places in a campaign directory."""
    return workflow_dir() / "profiles" / "slurm"


def workflow_profile() -> Path:
    """The campaign's default profile (``profiles/default``): settings of every run."""
    return workflow_dir() / "profiles" / "default"


def demo_dir() -> Path:
    """The embedded demo campaign: CuI, GFN1-xTB labels from tblite."""
    return _package_path("demo")


CAMPAIGN_SNAKEFILE = """\
# An almomd campaign directory. The workflow is the installed almomd package's;
# the settings are config/config.yaml. Run:  snakemake --cores N
# (on Slurm: snakemake --profile slurm). Plan first: almomd budget.
from almomd.resources import snakefile


include: snakefile()


rule campaign:
    # the default target: every iteration, the status, the report
    default_target: True
    input:
        CAMPAIGN_TARGETS,
"""


def init_campaign(directory: Path | str, force: bool = False) -> list[tuple[Path, str]]:
    """Write a campaign directory: Snakefile, demo config, Slurm and default profiles.

    Existing files are kept unless ``force``; returns each path with what was done.
    """
    directory = Path(directory)
    plan = [
        (directory / "Snakefile", None),
        (directory / "config" / "config.yaml", demo_dir() / "config.yaml"),
        (directory / "config" / "CuI.xyz", demo_dir() / "CuI.xyz"),
        (directory / "slurm" / "config.yaml", slurm_profile() / "config.yaml"),
        (directory / "profiles" / "default" / "config.yaml", workflow_profile() / "config.yaml"),
    ]
    done = []
    for target, source in plan:
        if target.exists() and not force:
            done.append((target, "kept"))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            target.write_text(CAMPAIGN_SNAKEFILE)
        else:
            shutil.copyfile(source, target)
        done.append((target, "written"))
    return done
