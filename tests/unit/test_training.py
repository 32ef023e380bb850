"""Rendering the NequIP template for one member."""

import pytest
import yaml
from conftest import REPO

from almomd.settings.schema import validate_config
from almomd.settings.sections import Settings
from almomd.training.template import render_template, template_variables


@pytest.fixture
def config():
    raw = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    return validate_config(raw, REPO / ".test")


def test_variables_reach_the_template(config, tmp_path):
    variables = template_variables(
        Settings.from_config(config), tmp_path / "subset.extxyz", ["Cu"], seed=11, data_seed=22
    )
    rendered = render_template(config["model"]["template"], variables)
    assert rendered["seed"] == 11 and rendered["data_seed"] == 22
    assert rendered["train_file"] == str((tmp_path / "subset.extxyz").resolve())
    assert rendered["num_features"] == 8
    assert rendered["max_epochs"] == 6
    assert rendered["train_fraction"] + rendered["val_fraction"] == pytest.approx(1.0)
    model = rendered["training_module"]["model"]
    assert model["seed"] == "${seed}"  # Hydra interpolation kept
    assert rendered["training_module"]["loss"]["_target_"] == "nequip.train.EnergyForceLoss"


def test_stress_weight_switches_the_loss(config, tmp_path):
    config["training"]["stress_weight"] = 0.5
    variables = template_variables(
        Settings.from_config(config), tmp_path / "s.extxyz", ["Cu"], 1, 2
    )
    loss = render_template(config["model"]["template"], variables)["training_module"]["loss"]
    assert loss["_target_"] == "nequip.train.EnergyForceStressLoss"
    assert loss["coeffs"]["stress"] == "${stress_weight}"


def test_reference_energies_replace_the_data_mean(config, tmp_path):
    variables = template_variables(
        Settings.from_config(config), tmp_path / "s.extxyz", ["Cu"], 1, 2
    )
    rendered = render_template(config["model"]["template"], variables, {"Cu": -3.5})
    assert rendered["training_module"]["model"]["per_type_energy_shifts"] == {"Cu": -3.5}


def test_a_template_without_the_variables_is_refused(config, tmp_path):
    template = tmp_path / "bad.yaml"
    template.write_text("run: [train]\nseed: 0\n")
    variables = template_variables(
        Settings.from_config(config), tmp_path / "s.extxyz", ["Cu"], 1, 2
    )
    with pytest.raises(ValueError, match="lacks the top-level variables"):
        render_template(template, variables)


def test_warm_started_members_take_their_own_epochs_and_rate(config, tmp_path):
    config["training"].update(warm_start=True, warm_start_epochs=2, warm_start_learning_rate=0.005)
    scratch = template_variables(Settings.from_config(config), tmp_path / "s.extxyz", ["Cu"], 1, 2)
    warm = template_variables(
        Settings.from_config(config), tmp_path / "s.extxyz", ["Cu"], 1, 2, warm_start=True
    )
    assert (scratch["max_epochs"], scratch["learning_rate"]) == (6, 0.02)
    assert (warm["max_epochs"], warm["learning_rate"]) == (2, 0.005)
    config["training"].update(warm_start_epochs=None, warm_start_learning_rate=None)
    same = template_variables(
        Settings.from_config(config), tmp_path / "s.extxyz", ["Cu"], 1, 2, warm_start=True
    )
    assert (same["max_epochs"], same["learning_rate"]) == (6, 0.02)


def test_the_device_a_job_runs_on(config, tmp_path, monkeypatch):
    """training.device: cpu, cuda (a clear error without a GPU) or auto (the GPU a job sees)."""
    import torch

    from almomd.errors import ConfigError
    from almomd.planning.jobs import rule_resources
    from almomd.settings.campaign import job_device

    def accelerator():
        variables = template_variables(
            Settings.from_config(config), tmp_path / "s.extxyz", ["Cu"], 1, 2
        )
        return render_template(config["model"]["template"], variables)["accelerator"]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU node
    assert job_device(config) == "cpu" and accelerator() == "cpu"
    config["training"]["device"] = "auto"
    assert job_device(config) == "cpu" and accelerator() == "cpu"
    assert rule_resources("train_member", config)["gpu"] == 0  # the profile decides
    config["training"]["device"] = "cuda"
    assert rule_resources("train_member", config)["gpu"] == 1
    with pytest.raises(ConfigError, match="sees no GPU.*set-resources.*training.device: auto"):
        job_device(config)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU node
    for device in ("cuda", "auto"):
        config["training"]["device"] = device
        assert job_device(config) == "cuda" and accelerator() == "gpu"


@pytest.mark.parametrize(("frames", "validated"), [(6, 1), (9, 1), (2, 1), (20, 2)])
def test_every_member_keeps_a_validation_frame(config, tmp_path, frames, validated):
    """NequIP splits with torch's random_split (floor of fraction x frames): a small
    subsample under val_fraction 0.1 would have no validation frame and fail."""
    import torch
    from ase.build import bulk

    from almomd.data.frames import labeled_copy, write_frames

    atoms = bulk("Cu", "fcc", a=3.6)
    write_frames(tmp_path / "s.extxyz", [
        labeled_copy(atoms, -1.0, [[0.0, 0.0, 0.0]], al_id=f"f{i}") for i in range(frames)
    ])  # fmt: skip
    assert config["training"]["val_fraction"] == 0.1
    variables = template_variables(Settings.from_config(config), tmp_path / "s.extxyz",
                                   ["Cu"], 1, 2)  # fmt: skip
    fractions = [variables["train_fraction"], variables["val_fraction"]]
    train, val = torch.utils.data.random_split(range(frames), fractions)
    assert (len(train), len(val)) == (frames - validated, validated)
