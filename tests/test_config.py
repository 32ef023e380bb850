"""A broken config fails before any job runs, with a message naming the key."""

import pytest
import yaml
from conftest import REPO, copy_test_config, snakemake

from almomd.config import ConfigError, load_config, members, validate_config, walkers


def load_test_config():
    return yaml.safe_load((REPO / ".test" / "config.yaml").read_text())


def broken(change):
    config = load_test_config()
    change(config)
    return config


BROKEN = {
    "unknown key": (
        lambda c: c["exploration"].update(temprature=[300]),
        "exploration.temprature",
    ),
    "wrong type": (lambda c: c["ensemble"].update(n_subsets="two"), "ensemble.n_subsets"),
    "missing structure": (
        lambda c: c["system"].update(structure="nowhere.xyz"),
        "system.structure",
    ),
    "negative temperature": (
        lambda c: c["exploration"].update(temperatures=[300, -5]),
        "exploration.temperatures[1]",
    ),
    "missing labeler": (lambda c: c.pop("labeler"), "labeler"),
    "unknown labeler": (lambda c: c["labeler"].update(name="dft9000"), "labeler.name"),
    "pseudopotentials nowhere": (
        lambda c: c["labeler"].update(name="espresso", parameters={"pseudo_dir": "/nowhere"}),
        "labeler.parameters.pseudo_dir",
    ),
    "torch.compile of AOTInductor members": (
        lambda c: (c["exploration"].update(torch_compile=True), c["training"].update(compile=True)),
        "exploration.torch_compile",
    ),
    "warm-start epochs without warm start": (
        lambda c: c["training"].update(warm_start_epochs=3),
        "training.warm_start_epochs",
    ),
    "held-out file without file source": (
        lambda c: c["heldout"].update(file="cu.xyz"),
        "heldout.file",
    ),
    "held-out file source without a file": (
        lambda c: c["heldout"].update(source="file"),
        "heldout.file",
    ),
    "held-out file missing": (
        lambda c: c.update(heldout={"source": "file", "file": "aimd/nowhere.extxyz"}),
        "heldout.file",
    ),
    "calibrated acceptance without a target": (
        lambda c: (c["selection"].update(acceptance="calibrated"), c.pop("convergence")),
        "selection.acceptance",
    ),
    "unknown held-out source": (
        lambda c: c["heldout"].update(source="vibes"),
        "heldout.source",
    ),
    "initial data pattern matches nothing": (
        lambda c: c["initial_data"].update(file="calcs/*/aims.out"),
        "initial_data.file",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validation_names_the_key(case):
    change, key = BROKEN[case]
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        validate_config(broken(change), REPO / ".test")


def test_defaults_are_filled_and_helpers_enumerate():
    config = validate_config(load_test_config(), REPO / ".test")
    assert config["selection"]["gradient"] == 1.0
    assert config["uncertainty"]["kind"] == "absolute"
    assert config["model"]["template"].endswith("config/nequip/train.yaml")
    assert [(w.temperature, w.replica) for w in walkers(config)] == [(600.0, 0), (900.0, 0)]
    assert members(config) == [(0, 0), (1, 0)]


def test_demo_config_is_valid(monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config("config/config.yaml")
    assert config["labeler"]["name"] == "tblite"


@pytest.mark.parametrize("case", ["unknown key", "negative temperature", "missing structure"])
def test_snakemake_stops_before_any_job(tmp_path, case):
    change, key = BROKEN[case]
    workdir = copy_test_config(tmp_path / "run")
    (workdir / "config.yaml").write_text(yaml.safe_dump(broken(change)))
    result = snakemake(workdir, "--cores", "1", timeout=120)
    assert result.returncode != 0
    assert key in result.stdout + result.stderr
    assert not (workdir / "results").exists()
    assert not (workdir / "logs").exists()


def schema_keys(properties, prefix=""):
    for name, sub in properties.items():
        if sub.get("type") == "object" and "properties" in sub:
            yield from schema_keys(sub["properties"], f"{prefix}{name}.")
        else:
            yield prefix + name


def test_every_key_is_documented():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    readme = (REPO / "config" / "README.md").read_text()
    missing = [key for key in schema_keys(schema["properties"]) if f"`{key}`" not in readme]
    assert not missing, f"document these keys in config/README.md: {missing}"


def test_compile_option_adds_compiled_members_to_the_plan(tmp_path):
    workdir = copy_test_config(tmp_path / "run")
    config = load_test_config()
    config["training"]["compile"] = True
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--cores", "1", "--dry-run", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    plan = result.stdout + result.stderr
    assert "rule compile_member:" in plan
    assert "results/iter_0/models/member_1_0.nequip.pt2" in plan
    explore = plan[plan.index("rule explore:") :].split("rule ", 2)[1]
    assert ".nequip.pt2" in explore and ".nequip.zip" not in explore


def test_torch_compile_needs_a_periodic_structure(tmp_path):
    from ase.build import molecule
    from ase.io import write

    write(tmp_path / "water.xyz", molecule("H2O"))
    config = load_test_config()
    config["system"] = {"structure": "water.xyz", "supercell": [1, 1, 1]}
    config["initial_data"].update(md_fraction=0.0)
    config["exploration"]["torch_compile"] = True
    with pytest.raises(ConfigError, match="exploration.torch_compile: needs a periodic"):
        validate_config(config, tmp_path)
    config["exploration"]["torch_compile"] = False
    validate_config(config, tmp_path)  # the same molecule without compiling is fine
