"""The GPU path: members trained on cuda, the ensemble and MD on cuda.

Runs only where torch sees a CUDA GPU; elsewhere every test is skipped with the
reason printed (``pytest -ra``), unless ALMOMD_REQUIRE names gpu (a GPU machine's
CI): then they run and fail.
"""

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, load_test_config, required, write_emt_frames

from almomd.data.frames import read_frames
from almomd.settings.schema import validate_config
from almomd.settings.sections import Settings

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available() and not required("gpu"),
    reason="no CUDA GPU visible here (torch.cuda.is_available() is False): "
    "the GPU path (training.device: cuda) was not tested",
)]  # fmt: skip


@pytest.fixture(scope="module")
def cuda_members(tmp_path_factory):
    from almomd.training.trainer import MemberRun, train_members

    work = tmp_path_factory.mktemp("gpu")
    config = validate_config(load_test_config(), REPO / ".test")
    config["training"] |= {"device": "cuda", "max_epochs": 3}
    frames = write_emt_frames(work / "train.extxyz", 16)
    runs = [MemberRun(frames, 10 + m, 20 + m, work / f"run_{m}", work / f"m{m}.nequip.zip")
            for m in range(2)]  # fmt: skip
    train_members(Settings.from_config(config), ["Cu"], runs)
    return config, runs, frames


def test_members_train_on_the_gpu(cuda_members):
    _, runs, _ = cuda_members
    for run in runs:
        rendered = yaml.safe_load((run.run_dir / "nequip.yaml").read_text())
        assert rendered["accelerator"] == "gpu"
        assert run.model_out.is_file()


def test_the_ensemble_on_the_gpu_agrees_with_the_cpu(cuda_members):
    from almomd.ensemble.calculator import EnsembleCalculator, predict

    _, runs, frames = cuda_members
    models = [str(run.model_out) for run in runs]
    atoms = read_frames(frames)[0]
    energy_cpu, forces_cpu, _ = predict(EnsembleCalculator(models, device="cpu"), atoms)
    energy_gpu, forces_gpu, _ = predict(EnsembleCalculator(models, device="cuda"), atoms)
    assert energy_gpu == pytest.approx(energy_cpu, abs=1e-3 * len(atoms))
    np.testing.assert_allclose(forces_gpu, forces_cpu, atol=1e-3)


def test_md_runs_on_the_gpu(cuda_members):
    from ase import units
    from ase.md.langevin import Langevin

    from almomd.stages.exploration import ensemble

    config, runs, frames = cuda_members
    atoms = read_frames(frames)[0]
    atoms.calc = ensemble(Settings.from_config(config), [str(run.model_out) for run in runs])
    Langevin(atoms, 1.0 * units.fs, temperature_K=300, friction=0.02).run(5)
    assert np.isfinite(atoms.get_forces()).all()


def test_walkers_in_one_pass_on_the_gpu_agree_with_each_alone_on_the_cpu(cuda_members):
    """exploration.walkers_per_job on cuda: 4 structures' graphs batched in one pass."""
    from almomd.ensemble.calculator import EnsembleCalculator

    _, runs, frames = cuda_members
    models = [str(run.model_out) for run in runs]
    structures = read_frames(frames)[:4]
    together = EnsembleCalculator(models, device="cuda").results_for(structures)
    cpu = EnsembleCalculator(models, device="cpu")
    for atoms, found in zip(structures, together, strict=True):
        alone = cpu.results_for([atoms])[0]
        assert found["energy"] == pytest.approx(alone["energy"], abs=1e-3 * len(atoms))
        np.testing.assert_allclose(found["member_forces"], alone["member_forces"], atol=1e-3)
