"""Committees of different architectures: which member gets which, and the Allegro block."""

import pytest
from conftest import REPO, load_test_config

from almomd import deploy
from almomd.errors import ConfigError
from almomd.settings.campaign import member_architecture
from almomd.settings.schema import validate_config
from almomd.settings.sections import Settings
from almomd.training.template import render_template, template_variables


def config_with(architectures):
    config = load_test_config()
    config["ensemble"].update(n_seeds=3, architectures=architectures)
    return validate_config(config, REPO / ".test")


def test_seeds_take_the_architectures_in_turn():
    config = config_with(["nequip", "allegro"])
    assert [member_architecture(config, m) for m in range(3)] == ["nequip", "allegro", "nequip"]
    assert member_architecture(validate_config(load_test_config(), REPO / ".test"), 1) == "nequip"
    with pytest.raises(ConfigError, match="ensemble.architectures"):
        config_with(["nequip", "mace"])


def test_the_allegro_block_shares_the_nequip_settings(tmp_path):
    config = config_with(["allegro"])
    variables = template_variables(
        Settings.from_config(config), tmp_path / "train.extxyz", ["Cu"], 11, 12
    )
    nequip = render_template(deploy.nequip_template(), variables)["training_module"]["model"]
    allegro = render_template(deploy.nequip_template(), variables, architecture="allegro")
    model = allegro["training_module"]["model"]
    assert model["_target_"] == "allegro.model.AllegroModel"
    for key in ("seed", "type_names", "r_max", "l_max", "parity", "per_type_energy_shifts"):
        assert model[key] == nequip[key], key
    assert model["num_scalar_features"] == "${num_features}" and allegro["num_features"] == 8
    with pytest.raises(ValueError, match="unknown architecture 'mace'"):
        render_template(deploy.nequip_template(), variables, architecture="mace")
