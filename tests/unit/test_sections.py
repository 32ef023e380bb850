"""Typed settings: a dataclass per config section, with the schema's keys and defaults."""

import dataclasses

import pytest
import yaml
from conftest import REPO, load_test_config

from almomd import deploy
from almomd.settings.schema import validate_config
from almomd.settings.sections import SCALARS, SECTIONS, MissingSection, Settings, section


def schema_sections():
    return yaml.safe_load(deploy.schema_file().read_text())["properties"]


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_each_section_has_the_schemas_keys_and_defaults(name):
    properties = schema_sections()[name]["properties"]
    fields = [f.name for f in dataclasses.fields(SECTIONS[name])]
    assert sorted(fields) == sorted(properties), f"the {name} dataclass and the schema differ"
    defaults = {key: sub["default"] for key, sub in properties.items() if "default" in sub}
    required = {"name": "emt"} if name == "labeler" else {}  # the one key without default
    assert section(SECTIONS[name], defaults | required) == section(SECTIONS[name], required), (
        f"the {name} dataclass's defaults differ from the schema's"
    )


def test_every_schema_section_is_typed():
    typed = set(SECTIONS) | set(SCALARS) | {"system", "systems"}
    assert set(schema_sections()) == typed


def test_settings_hold_the_validated_values():
    config = validate_config(load_test_config(), REPO / ".test")
    settings = Settings.from_config(config)
    for name in SECTIONS:
        for key, value in config[name].items():
            typed = getattr(getattr(settings, name), key)
            assert typed == (tuple(value) if isinstance(value, list) else value), f"{name}.{key}"
    assert settings.seed == config["seed"]
    assert [w.temperature for w in settings.walkers()] == [600.0, 900.0]
    assert settings.members() == [(0, 0), (1, 0)]
    assert settings.uncertainty.column == "u_force_max"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.training.device = "cuda"


def test_a_section_the_rule_did_not_hand_over_is_named():
    config = validate_config(load_test_config(), REPO / ".test")
    settings = Settings.from_config({name: config[name] for name in ("seed", "training")})
    assert settings.training.max_epochs == config["training"]["max_epochs"]
    with pytest.raises(MissingSection, match="'labeler'.*settings"):
        settings.labeler  # noqa: B018
    with pytest.raises(MissingSection, match="'systems'"):
        settings.walkers()


def test_a_systems_own_exploration_overrides_the_campaigns():
    raw = load_test_config()
    structure = raw.pop("system")["structure"]
    raw["systems"] = [
        {"name": "bulk", "structure": structure},
        {"name": "hot", "from": "bulk", "remove": [0], "exploration": {"temperatures": [1200]}},
    ]
    settings = Settings.from_config(validate_config(raw, REPO / ".test"))
    assert settings.exploration_of("hot").temperatures == (1200,)
    assert settings.exploration_of("bulk").temperatures == settings.exploration.temperatures
    assert settings.exploration_of("hot").timestep == settings.exploration.timestep
