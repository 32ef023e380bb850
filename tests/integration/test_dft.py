"""Real DFT codes through the labelers: GPAW in process, Quantum ESPRESSO as a subprocess.

Both are installed by ``tests/dft/install.sh`` (run by ``make test``); the test
fails, rather than skips, when they are missing.
"""

import re

import numpy as np
import pytest
from ase.build import bulk
from conftest import assert_labels_equal

from almomd.data.frames import read_frames
from almomd.data.importers import read_labeled
from almomd.labeling.labelers import Labeler, LabelerSettings
from almomd.labeling.single_points import label_frames

pytestmark = pytest.mark.dft

PSEUDO_DIR = "/usr/share/espresso/pseudo"  # Debian's quantum-espresso-data


def si2(n=2):
    frames = []
    for i in range(n):
        atoms = bulk("Si", "diamond", a=5.43)
        atoms.rattle(0.05, seed=10 + i)
        atoms.info.update(al_id=f"it0-w0-s{i:06d}", al_step=i, al_source="active")
        frames.append(atoms)
    return frames


def run(tmp_path, frames, settings):
    labeler = Labeler(settings)
    counts = label_frames(frames, labeler, tmp_path / "ok.extxyz", tmp_path / "bad.extxyz")
    return (
        counts,
        read_frames(tmp_path / "ok.extxyz"),
        read_frames(tmp_path / "bad.extxyz"),
    )


def assert_same_labels(labeled, frames, make_calc):
    assert_labels_equal(labeled, frames, make_calc, atol=1e-6, stress_atol=1e-7)
    for atoms in labeled:
        assert np.abs(atoms.get_forces()).max() > 0.01  # rattled: real, non-zero forces


GPAW_PARAMETERS = {"mode": {"name": "pw", "ecut": 200}, "kpts": [2, 2, 2], "xc": "PBE"}


def test_gpaw_labels_equal_a_direct_ase_call(tmp_path):
    from gpaw import GPAW

    frames = si2()
    settings = LabelerSettings(name="gpaw", parameters=GPAW_PARAMETERS, stress=True)
    (n_ok, n_failed), labeled, _ = run(tmp_path, frames, settings)
    assert (n_ok, n_failed) == (2, 0)
    assert_same_labels(labeled, frames, lambda: GPAW(**GPAW_PARAMETERS, txt=None))
    assert all(a.info["al_labeler"] == "gpaw" for a in labeled)
    log = tmp_path / "calc" / frames[0].info["al_id"] / "gpaw.txt"
    assert "Free energy" in log.read_text()
    # GPAW's own text output, as a user's existing data, reads back to the same labels
    (imported,) = read_labeled(log)[-1:]
    assert imported.get_potential_energy() == pytest.approx(
        labeled[0].get_potential_energy(), abs=1e-5
    )
    np.testing.assert_allclose(imported.get_forces(), labeled[0].get_forces(), atol=1e-4)


def test_gpaw_scf_failure_is_quarantined(tmp_path):
    parameters = {**GPAW_PARAMETERS, "maxiter": 2}
    (n_ok, n_failed), _, failed = run(
        tmp_path, si2(1), LabelerSettings(name="gpaw", parameters=parameters)
    )
    assert (n_ok, n_failed) == (0, 1)
    assert failed[0].info["fail_type"] == "KohnShamConvergenceError"


def espresso_parameters(maxstep):
    return {
        "pseudo_dir": PSEUDO_DIR,
        "pseudopotentials": {"Si": "Si.pz-vbc.UPF"},
        "input_data": {"system": {"ecutwfc": 15}, "electrons": {"electron_maxstep": maxstep}},
        "kpts": [2, 2, 2],
    }


def direct_espresso(directory, maxstep):
    from ase.calculators.espresso import Espresso, EspressoProfile

    parameters = espresso_parameters(maxstep)
    parameters.pop("pseudo_dir")
    parameters["input_data"]["control"] = {"tprnfor": True, "tstress": True}
    profile = EspressoProfile(command="pw.x", pseudo_dir=PSEUDO_DIR)
    return Espresso(profile=profile, directory=str(directory), **parameters)


def test_espresso_subprocess_fails_then_succeeds_with_the_fallback(tmp_path):
    frames = si2()
    settings = LabelerSettings(
        name="espresso",
        command="{launcher} pw.x",
        parameters=espresso_parameters(maxstep=1),  # SCF cannot converge in one step
        fallback={"input_data": {"electrons": {"electron_maxstep": 100}}},
        stress=True,
    )
    (n_ok, n_failed), labeled, _ = run(tmp_path, frames, settings)
    assert (n_ok, n_failed) == (2, 0)
    assert all("CalledProcessError" in a.info["al_first_failure"] for a in labeled)
    assert_same_labels(labeled, frames, lambda: direct_espresso(tmp_path / "direct", 100))
    # inputs and outputs stay for inspection; the output reads back as user data
    frame_dir = tmp_path / "calc" / frames[0].info["al_id"]
    assert "convergence NOT achieved" in (frame_dir / "espresso.pwo").read_text()
    output = frame_dir / "fallback" / "espresso.pwo"
    imported = read_labeled(output)[-1]
    assert imported.get_potential_energy() == pytest.approx(labeled[0].get_potential_energy())
    np.testing.assert_allclose(imported.get_forces(), labeled[0].get_forces(), atol=1e-6)


def test_espresso_failure_without_fallback_is_quarantined(tmp_path):
    settings = LabelerSettings(name="espresso", parameters=espresso_parameters(maxstep=1))
    (n_ok, n_failed), _, failed = run(tmp_path, si2(1), settings)
    assert (n_ok, n_failed) == (0, 1)
    assert failed[0].info["fail_type"] == "CalledProcessError"
    assert failed[0].info["al_labeler"] == "espresso"
    # the non-zero exit is pw.x's own for this failure: its output says it did not converge
    assert "non-zero exit status" in failed[0].info["fail_reason"]
    output = tmp_path / "calc" / failed[0].info["al_id"] / "espresso.pwo"
    assert re.search(r"convergence NOT achieved after +1 iterations: stopping", output.read_text())
