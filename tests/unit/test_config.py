"""A broken config fails before any job runs, with a message naming the key."""

import pytest
import yaml
from conftest import REPO, load_test_config, test_config_with

from almomd import deploy
from almomd.errors import ConfigError
from almomd.settings.campaign import members, walkers
from almomd.settings.schema import load_config, validate_config

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
    "relative novelty": (
        lambda c: c["uncertainty"].update(metric="novelty", kind="relative"),
        "uncertainty.kind",
    ),
    "novelty of AOTInductor members": (
        lambda c: (
            c["uncertainty"].update(metric="force_max_novelty"),
            c["training"].update(compile=True),
        ),
        "uncertainty.metric",
    ),  # fmt: skip
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


@pytest.mark.parametrize(
    "structure, message",
    [
        ("CuI", r"config key labeler.name: emt cannot label \['I'\]"),
        ("NaN", "config key system.structure: the structure has non-finite"),
    ],
)
def test_structures_the_labeler_or_the_md_cannot_use(tmp_path, structure, message):
    from ase.build import bulk

    if structure == "CuI":
        atoms = bulk("CuI", "zincblende", a=6.05)
    else:
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.positions[1, 0] = float("nan")
    atoms.write(tmp_path / "start.xyz", format="extxyz")
    config = test_config_with(lambda c: c["system"].update(structure="start.xyz"))
    with pytest.raises(ConfigError, match=message):
        validate_config(config, tmp_path)


def test_elements_come_from_every_data_file_and_pattern(tmp_path):
    """The one element set of a campaign: structure, and initial data given as a pattern."""
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    from almomd.settings.files import chemical_symbols

    (tmp_path / "cu.xyz").write_text((REPO / ".test" / "cu.xyz").read_text())
    for i, element in enumerate(("Ag", "Au")):
        atoms = bulk(element, "fcc", a=4.1)
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=[[0.0, 0.0, 0.0]])
        (tmp_path / "calcs" / str(i)).mkdir(parents=True)
        atoms.write(tmp_path / "calcs" / str(i) / "out.extxyz", format="extxyz")
    config = test_config_with(lambda c: c["initial_data"].update(file="calcs/*/out.extxyz"))
    assert chemical_symbols(config, tmp_path) == ["Ag", "Au", "Cu"]


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validation_names_the_key(case):
    change, key = BROKEN[case]
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        validate_config(test_config_with(change), REPO / ".test")


def test_defaults_are_filled_and_helpers_enumerate():
    config = validate_config(load_test_config(), REPO / ".test")
    assert config["selection"]["gradient"] == 1.0
    assert config["uncertainty"]["kind"] == "absolute"
    assert config["model"]["template"] is None  # the bundled template, wherever installed
    assert [(w.temperature, w.replica) for w in walkers(config)] == [(600.0, 0), (900.0, 0)]
    assert members(config) == [(0, 0), (1, 0)]


def test_demo_config_is_valid(tmp_path, monkeypatch):
    deploy.init_campaign(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = load_config("config/config.yaml")
    assert config["labeler"]["name"] == "tblite"


def schema_keys(properties, prefix="", in_list=False):
    """Documented keys: sections' keys, and the keys of a list's entries (name[].key)."""
    for name, sub in properties.items():
        items = sub.get("items", {}) if sub.get("type") == "array" else {}
        if sub.get("type") == "object" and "properties" in sub and not in_list:
            yield from schema_keys(sub["properties"], f"{prefix}{name}.")
        elif "properties" in items and not in_list:
            yield prefix + name
            yield from schema_keys(items["properties"], f"{prefix}{name}[].", in_list=True)
        else:
            yield prefix + name


def test_every_key_is_documented():
    schema = yaml.safe_load(deploy.schema_file().read_text())
    readme = (REPO / "config" / "README.md").read_text()
    missing = [key for key in schema_keys(schema["properties"]) if f"`{key}`" not in readme]
    assert not missing, f"document these keys in config/README.md: {missing}"


def test_torch_compile_needs_a_periodic_structure(tmp_path):
    from ase.build import molecule
    from ase.io import write

    write(tmp_path / "water.xyz", molecule("H2O"))
    config = load_test_config()
    config["system"] = {"structure": "water.xyz", "supercell": [1, 1, 1]}
    config["initial_data"].update(md_fraction=0.0)
    config["exploration"]["torch_compile"] = True
    with pytest.raises(
        ConfigError, match="exploration.torch_compile: needs periodic structures.*system water"
    ):
        validate_config(config, tmp_path)
    config["exploration"]["torch_compile"] = False
    validate_config(config, tmp_path)  # the same molecule without compiling is fine


def test_the_bundled_template_is_the_same_setting_in_every_installation(tmp_path):
    import json

    from almomd import layout
    from almomd.settings.history import changed_settings

    config = validate_config(load_test_config(), REPO / ".test")
    other_install = "/opt/venv/lib/python3.12/site-packages/almomd/workflow/nequip/train.yaml"
    for template, changed in ((other_install, False), ("my-train.yaml", True)):
        settings = json.loads(json.dumps(config))
        settings["model"]["template"] = template
        decision = layout.path(layout.DECISION, tmp_path, iteration=0)
        decision.parent.mkdir(parents=True, exist_ok=True)
        decision.write_text(json.dumps({"stop": False, "settings": settings}))
        lines = changed_settings(tmp_path, config).get(0, [])
        assert any(line.startswith("model.template") for line in lines) == changed, lines
