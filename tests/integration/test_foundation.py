"""Starting from a pretrained model (training.start_from): a small "foundation" model
pretrained here on EMT over four fcc metals, fine-tuned by a campaign whose labeler has
another zero of energy, through the real snakemake."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from conftest import BIN, REPO, copy_test_config, load_test_config, run, snakemake

from almomd import layout
from almomd.data.frames import labeled_copy, read_frames, write_frames
from almomd.errors import ConfigError
from almomd.settings.packages import read_package
from almomd.settings.schema import validate_config
from almomd.settings.sections import Settings
from almomd.training import trainer
from almomd.training.fine_tune import package_shifts, reference_shifts

pytestmark = pytest.mark.workflow

METALS = ("Ag", "Au", "Cu", "Ni")
SHIFT = -2.0  # flaky_labelers.ShiftedEMT's, eV per atom


def emt_frames(symbol: str, n: int, seed: int, shift: float = 0.0) -> list:
    """``n`` rattled and strained 2x2x2 fcc cells of ``symbol`` with EMT labels (+ ``shift``
    eV per atom)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        atoms = bulk(symbol, "fcc", cubic=True).repeat((2, 2, 2))
        atoms.set_cell(atoms.cell * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
        atoms.rattle(rng.uniform(0.03, 0.12), seed=seed * 100 + i)
        atoms.calc = EMT()
        energy = atoms.get_potential_energy() + shift * len(atoms)
        frames.append(labeled_copy(atoms, energy, atoms.get_forces(), al_id=f"{symbol}-{i}"))
    return frames


@pytest.fixture(scope="module")
def foundation(tmp_path_factory) -> Path:
    """A NequIP package pretrained on EMT frames of Ag, Au, Cu and Ni (the .test model's size)."""
    work = tmp_path_factory.mktemp("foundation")
    frames = [a for k, symbol in enumerate(METALS) for a in emt_frames(symbol, 10, k + 1)]
    write_frames(work / "train.extxyz", frames)
    config = validate_config(load_test_config(), REPO / ".test")
    config["training"]["max_epochs"] = 8
    package = work / "foundation.nequip.zip"
    trainer.train_member(Settings.from_config(config), work / "train.extxyz", list(METALS), 3, 4,
                         work / "run", package)  # fmt: skip
    return package


def test_the_package_is_read_without_loading_it(foundation):
    package = read_package(foundation)
    assert package.type_names == METALS
    assert package.architecture == "nequip"
    assert package.cutoff() == pytest.approx(4.0)  # the .test model's r_max
    assert package.model["num_features"] == 8


def config_starting_from(foundation: Path, where: Path, change=None) -> dict:
    shutil.copy(foundation, where / "foundation.nequip.zip")
    config = load_test_config()
    config["training"]["start_from"] = "foundation.nequip.zip"
    if change is not None:
        change(config)
    return config


def test_a_package_that_fits_is_accepted(foundation, tmp_path):
    copy_test_config(tmp_path)
    config = validate_config(config_starting_from(foundation, tmp_path), tmp_path)
    assert config["training"]["start_from"] == "foundation.nequip.zip"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["system"].update(structure="pt.xyz"), r"no atom types for \['Pt'\]"),
        (lambda c: c["model"].update(r_max=5.0), "config key model.r_max: 5.0 conflicts"),
        (lambda c: c["model"].update(num_features=16), "model.num_features: 16 conflicts"),
        (lambda c: c["ensemble"].update(architectures=["allegro"]), "ensemble.architectures"),
        (lambda c: c["training"].update(start_from="cu.xyz"), "not a zip archive"),
        (lambda c: c["training"].update(start_from="none.zip"), "none.zip does not exist"),
        (lambda c: c["initial_data"].update(md_pool=3), "md_pool: picks snapshots in a package"),
        (
            lambda c: c["training"].update(start_from=None, start_perturbation=0.1),
            "training.start_perturbation: moves the weights",
        ),
        (
            lambda c: c["initial_data"].update(md_calculator="pt.nequip.zip"),
            "initial_data.md_calculator: .*pt.nequip.zip does not exist",
        ),
    ],
)
def test_what_conflicts_with_the_package_is_refused_naming_the_key(
    foundation, tmp_path, change, message
):
    copy_test_config(tmp_path)
    bulk("Pt", "fcc", a=3.92).write(tmp_path / "pt.xyz")
    config = config_starting_from(foundation, tmp_path, change)
    with pytest.raises(ConfigError, match=message):
        validate_config(config, tmp_path)


def test_model_settings_that_agree_with_the_package_may_be_given(foundation, tmp_path):
    copy_test_config(tmp_path)  # the .test config states r_max 4.0 and num_features 8 itself
    config = config_starting_from(foundation, tmp_path)
    assert config["model"]["r_max"] == 4.0 and config["model"]["num_features"] == 8
    validate_config(config, tmp_path)


def loaded(package: Path):
    """The package as an ASE calculator."""
    from nequip.integrations.ase import NequIPCalculator

    return NequIPCalculator._from_saved_model(str(package), chemical_species_to_atom_type_map=True)


def mean_offset(calc, frames) -> float:
    """Mean of (label - prediction) per atom, eV."""
    found = []
    for atoms in frames:
        work = atoms.copy()
        work.calc = calc
        found.append((atoms.get_potential_energy() - work.get_potential_energy()) / len(atoms))
    return float(np.mean(found))


def test_a_perturbed_start_moves_each_member_by_its_own_noise(foundation):
    import torch

    from almomd.training.fine_tune import perturbed

    block = {"_target_": "nequip.model.ModelFromPackage", "package_path": str(foundation)}
    weights = [
        torch.cat([p.detach().reshape(-1) for p in perturbed(block, seed, scale).parameters()])
        for seed, scale in ((1, 0.0), (1, 0.1), (1, 0.1), (2, 0.1))
    ]
    package, first, again, other = weights
    assert torch.equal(first, again)  # the member's seed decides its noise
    assert not torch.equal(first, other)
    moved = (first - package).abs()
    assert 0 < moved.mean() < 0.1 * package.abs().max()


def test_a_perturbed_start_keeps_trainable_energy_shifts(foundation):
    from almomd.training.fine_tune import package_shifts, perturbed

    shifts = {"Ag": -1.0, "Au": -2.0, "Cu": -3.0, "Ni": -4.0}  # a spread of 1.3 eV
    block = {
        "_target_": "nequip.model.modify",
        "model": {"_target_": "nequip.model.ModelFromPackage", "package_path": str(foundation)},
        "modifiers": [
            {"modifier": "modify_PerTypeScaleShift", "shifts": shifts, "shifts_trainable": True}
        ],
    }
    built = perturbed(block, 1, 0.5)
    trainable = [n for n, p in built.named_parameters() if "shift" in n and p.requires_grad]
    assert trainable  # they are weights here, and still not moved
    assert package_shifts(built) == pytest.approx(shifts)


def test_shifts_fitted_to_another_zero_of_energy_remove_its_offset(foundation):
    from nequip.model import modify
    from nequip.model.saved_models import load_saved_model

    frames = emt_frames("Cu", 6, 11, SHIFT) + emt_frames("Ni", 6, 12, SHIFT)
    calc = loaded(foundation)
    before = mean_offset(calc, frames)
    assert before == pytest.approx(SHIFT, abs=0.3)  # the package knows EMT's zero
    shifts = reference_shifts(foundation, frames)
    assert set(shifts) == {"Cu", "Ni"}  # only the types the frames hold
    old = package_shifts(calc.model)
    for symbol in ("Cu", "Ni"):
        assert shifts[symbol] - old[symbol] == pytest.approx(SHIFT, abs=0.3)
    model = load_saved_model(str(foundation), compile_mode="eager")
    calc.model = modify(model, [{"modifier": "modify_PerTypeScaleShift", "shifts": shifts}])
    assert abs(mean_offset(calc, frames)) < 0.02
    assert package_shifts(calc.model)["Ag"] == pytest.approx(old["Ag"])  # kept
    assert reference_shifts(foundation, frames, {"Cu": -1.0, "Ni": -2.5}) == {
        "Cu": -1.0, "Ni": -2.5,
    }  # fmt: skip


@pytest.fixture(scope="module")
def fine_tuned(foundation, tmp_path_factory) -> Path:
    """One iteration of the .test campaign (Cu) fine-tuning the foundation model with labels
    of another zero of energy."""
    workdir = copy_test_config(tmp_path_factory.mktemp("fine_tuned"))

    def change(config):
        config["max_iterations"] = 1
        config["labeler"] = {"name": "flaky_labelers:ShiftedEMT", "n_batches": 1}
        config["training"].update(max_epochs=4, learning_rate=0.005)  # start_perturbation 0.2
        config["observables"] = {"enabled": False}
        # the initial MD with the package at the exploration temperatures, picked for spread
        config["initial_data"].update(md_calculator="start_from", md_temperature=None, md_pool=2)

    config = config_starting_from(foundation, workdir, change)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(REPO / "tests" / "flaky_labelers.py", workdir)
    result = snakemake(workdir, "--cores", "2")
    if result.returncode != 0:
        pytest.fail(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return workdir


def test_members_fine_tune_the_package_re_referenced(fine_tuned, foundation):
    members = sorted((fine_tuned / "results" / "iter_0" / "models").glob("member_*.nequip.zip"))
    assert len(members) == 2
    for member in members:
        assert read_package(member).type_names == METALS  # the package's types, kept
    logs = sorted((fine_tuned / "logs" / "iter_0").glob("train_*.log"))
    assert logs and all("fine-tuning" in log.read_text() for log in logs)
    rendered = yaml.safe_load(
        (fine_tuned / "results/iter_0/training/member_0_0/nequip.yaml").read_text()
    )
    model = rendered["training_module"]["model"]
    assert model["_target_"] == "almomd.training.fine_tune.perturbed"  # start_perturbation
    assert (model["seed"], model["perturbation"]) == ("${seed}", 0.2)  # the default
    model = model["model"]
    assert model["_target_"] == "nequip.model.modify"
    assert model["model"]["package_path"] == str((fine_tuned / "foundation.nequip.zip").resolve())
    shifts = model["modifiers"][0]["shifts"]
    assert set(shifts) == {"Cu"}
    old = package_shifts(loaded(foundation).model)
    assert shifts["Cu"] - old["Cu"] == pytest.approx(SHIFT, abs=0.3)
    # the fine-tuned members predict the labeler's energies, offset and all (its 2 eV per
    # atom; what is left is 4 epochs' worth of fine-tuning from a perturbed start)
    test = read_frames(layout.path(layout.TEST_SET, fine_tuned))
    for member in members:
        calc = loaded(member)
        assert abs(mean_offset(calc, test)) < 0.1


def test_the_initial_md_ran_with_the_package_at_the_campaign_temperatures(fine_tuned):
    log = (fine_tuned / "logs" / "initial" / "candidates.log").read_text()
    assert "kept 8 of 16 snapshots, farthest apart in the package's features" in log
    assert "kept 7 of 14 snapshots" in log  # 15 MD frames: 8 at 600 K, 7 at 900 K
    candidates = read_frames(layout.path(layout.INITIAL_CANDIDATES, fine_tuned))
    assert len(candidates) == 30


def test_a_package_without_a_species_is_refused_before_any_job(fine_tuned, tmp_path):
    workdir = copy_test_config(tmp_path / "refused")
    config = yaml.safe_load((fine_tuned / "config.yaml").read_text())
    config["system"]["structure"] = "pt.xyz"
    bulk("Pt", "fcc", a=3.92).write(workdir / "pt.xyz")
    for name in ("foundation.nequip.zip", "flaky_labelers.py"):
        shutil.copy(fine_tuned / name, workdir)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--cores", "1")
    assert result.returncode != 0
    # the initial MD's package is checked first (md_calculator: start_from)
    assert "the package foundation.nequip.zip has no atom types for ['Pt']" in result.stderr
    assert not (workdir / "results").exists()


def test_a_campaign_made_by_init_plans_fine_tuning_its_package(foundation, tmp_path):
    """``almomd init``'s form: paths relative to the campaign directory, plain ``snakemake``
    there; the package is checked, planned and in the DAG before anything runs."""
    directory = tmp_path / "my campaign"
    assert run([BIN / "almomd", "init", directory], tmp_path).returncode == 0
    (directory / "models").mkdir()
    shutil.copy(foundation, directory / "models" / "foundation.nequip.zip")
    shutil.copy(REPO / ".test" / "cu.xyz", directory / "config" / "cu.xyz")
    config = load_test_config()
    config["system"]["structure"] = "config/cu.xyz"
    config["training"]["start_from"] = "models/foundation.nequip.zip"
    config["initial_data"].update(md_calculator="start_from", md_temperature=None)
    config["observables"] = {"enabled": False}
    settings = directory / "config" / "config.yaml"
    settings.write_text(yaml.safe_dump(config))

    validated = run([BIN / "almomd", "validate"], directory)
    assert validated.returncode == 0, validated.stderr
    plan = run([BIN / "almomd", "budget", "--json"], directory)
    assert plan.returncode == 0, plan.stderr
    assert "initial_candidates" in plan.stdout
    dry = run([BIN / "snakemake", "--dry-run"], directory)
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    assert "initial_candidates" in dry.stdout and "train_" in dry.stdout

    # the same package named from the clone's root, not the campaign's: refused, named
    config["training"]["start_from"] = "foundation.nequip.zip"
    settings.write_text(yaml.safe_dump(config))
    refused = run([BIN / "snakemake", "--dry-run"], directory)
    assert refused.returncode != 0
    assert "foundation.nequip.zip" in refused.stdout + refused.stderr
    assert not (directory / "results").exists()
