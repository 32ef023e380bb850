"""Readers of existing labeled data, each tested on a small file of its format.

ASE writes extxyz and trajectories; the FHI-vibes son file and VASP's
vasprun.xml are built here from their documented layouts, with known numbers,
so that unit conversions (VASP's stress in kBar) are checked. Real outputs of
FHI-aims and VASP (tests/data/public, with their source) are read too and
compared with numbers parsed from their text; pw.x and GPAW outputs written by
the real codes are read in integration/test_dft.py.
"""

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from almomd.data.frames import frame_ids, read_user_frames
from almomd.data.importers import read_labeled, read_son


def emt_frames(n=3):
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=i)
        atoms.wrap()  # VASP writes fractional coordinates in [0, 1)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=atoms.get_potential_energy(),
            forces=atoms.get_forces(),
            stress=EMT().get_stress(atoms),
        )
        frames.append(atoms)
    return frames


def assert_same(frames, expected, stress=True):
    assert len(frames) == len(expected)
    for atoms, reference in zip(frames, expected, strict=True):
        assert atoms.get_chemical_symbols() == reference.get_chemical_symbols()
        np.testing.assert_allclose(atoms.positions, reference.positions, atol=1e-8)
        np.testing.assert_allclose(atoms.cell, reference.cell, atol=1e-8)
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy())
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-8)
        if stress:
            np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), atol=1e-9)


@pytest.mark.parametrize("name", ["frames.extxyz", "frames.traj"])
def test_ase_formats(tmp_path, name):
    frames = emt_frames()
    ase.io.write(tmp_path / name, frames)
    assert_same(read_labeled(tmp_path / name), frames)


def son_text(frames, reduced=True):
    """An FHI-vibes trajectory.son: metadata, ===, then one JSON object per step."""
    first = frames[0]
    symbols = first.get_chemical_symbols()
    metadata = {
        "MD": {"type": "molecular-dynamics", "md-type": "Langevin", "timestep": 0.5},
        "calculator": {"calculator": "Aims", "calculator_parameters": {"xc": "pw-lda"}},
        "atoms": {
            "pbc": [True, True, True],
            "cell": first.cell.tolist(),
            "positions": first.positions.tolist(),
            "symbols": [[len(symbols), symbols[0]]] if reduced else symbols,
            "masses": [[len(symbols), float(first.get_masses()[0])]],
        },
    }
    parts = [json.dumps(metadata, indent=1), "==="]
    for atoms in frames:
        stress3 = -np.diag(atoms.get_stress()[:3])  # only the diagonal in this test
        step = {
            "atoms": {
                "cell": atoms.cell.tolist(),
                "positions": atoms.positions.tolist(),
                "velocities": np.zeros((len(atoms), 3)).tolist(),
            },
            "calculator": {
                "energy": atoms.get_potential_energy(),
                "free_energy": atoms.get_potential_energy(),
                "forces": atoms.get_forces().tolist(),
                "stress": (-stress3).tolist(),
            },
            "MD": {"step": 0, "dt": 0.5},
        }
        parts += [json.dumps(step, indent=1), "---"]
    return "\n".join(parts[:-1]) + "\n"


def test_fhi_vibes_son(tmp_path):
    frames = emt_frames()
    for atoms in frames:  # a diagonal stress, as written in son_text
        s = atoms.get_stress()
        atoms.calc.results["stress"] = np.array([*s[:3], 0.0, 0.0, 0.0])
    path = tmp_path / "trajectory.son"
    path.write_text(son_text(frames))
    read = read_son(path)
    assert_same(read, frames)
    assert read[0].get_masses()[0] == pytest.approx(frames[0].get_masses()[0])
    assert_same(read_labeled(path), frames)
    # expanded symbols, and an old file without the === metadata marker
    path.write_text(son_text(frames, reduced=False).replace("\n===\n", "\n---\n"))
    assert_same(read_son(path), frames)
    # a user's initial data file in this format gets provenance like any other
    user = read_user_frames(path, "user")
    assert frame_ids(user) == ["user-0000", "user-0001", "user-0002"]


def vasprun_text(frames, stress_kbar, forces):
    """A minimal vasprun.xml: atominfo, initial structure, one calculation per frame."""

    def varray(name, rows):
        lines = "".join(f"<v>{' '.join(f'{x:.10f}' for x in row)}</v>" for row in rows)
        return f'<varray name="{name}">{lines}</varray>'

    first = frames[0]
    atoms_rows = "".join(f"<rc><c>{s}</c><c>1</c></rc>" for s in first.get_chemical_symbols())
    parts = [
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>',
        '<kpoints><varray name="kpointlist"><v>0 0 0</v></varray>'
        '<varray name="weights"><v>1</v></varray></kpoints>',
        f'<atominfo><atoms>{len(first)}</atoms><array name="atoms"><set>{atoms_rows}'
        "</set></array></atominfo>",
        '<structure name="initialpos"><crystal>'
        + varray("basis", first.cell)
        + "</crystal>"
        + varray("positions", first.get_scaled_positions())
        + "</structure>",
    ]
    for atoms, stress, force in zip(frames, stress_kbar, forces, strict=True):
        energy = atoms.get_potential_energy()
        parts.append(
            "<calculation>"
            f'<scstep><energy><i name="e_fr_energy">{energy:.10f}</i>'
            f'<i name="e_0_energy">{energy:.10f}</i></energy></scstep>'
            "<structure><crystal>"
            + varray("basis", atoms.cell)
            + "</crystal>"
            + varray("positions", atoms.get_scaled_positions())
            + "</structure>"
            + varray("forces", force)
            + varray("stress", stress)
            + f'<energy><i name="e_fr_energy">{energy:.10f}</i>'
            f'<i name="e_0_energy">{energy:.10f}</i></energy>'
            "</calculation>"
        )
    parts.append("</modeling>\n")
    return "\n".join(parts)


def test_vasprun_xml_converts_kbar(tmp_path):
    frames = emt_frames(2)
    stress_kbar = [np.diag([10.0, 20.0, 30.0]) + i for i in range(2)]  # symmetric 3x3
    path = tmp_path / "vasprun.xml"
    path.write_text(vasprun_text(frames, stress_kbar, [a.get_forces() for a in frames]))
    read = read_labeled(path)
    assert_same(read, frames, stress=False)
    # VASP writes the stress in kBar with the opposite sign; ASE's is eV/A^3
    for i, (atoms, kbar) in enumerate(zip(read, stress_kbar, strict=True)):
        expected = -kbar * 0.1 * units.GPa
        np.testing.assert_allclose(atoms.get_stress(), expected.reshape(9)[[0, 4, 8, 5, 2, 1]])
        # independent of ase.units: 1 kBar = 0.1 GPa and 1 eV/A^3 = 160.2177 GPa
        assert atoms.get_stress()[0] == pytest.approx(-(10.0 + i) * 0.1 / 160.21766, rel=1e-5)


def test_unlabeled_file_is_refused(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6)
    ase.io.write(tmp_path / "bare.extxyz", atoms)
    with pytest.raises(ValueError, match="has no forces; give a labeled file"):
        read_labeled(tmp_path / "bare.extxyz")


def aims_out_text(atoms):
    """A minimal FHI-aims single-point output (header, one converged SCF, forces)."""
    energy = atoms.get_potential_energy()
    lines = [
        "  Invoking FHI-aims ...",
        f"  | Number of atoms                   : {len(atoms):8d}",
        "  | Number of spin channels           :        1",
        "  | Number of Kohn-Sham states (occupied + empty):       40",
        f"  The structure contains {len(atoms):8d} atoms,  and a total of  "
        f"{29.0 * len(atoms):.3f} electrons.",
        "  Input geometry:",
        "  | Unit cell:",
        *(f"  | {v[0]:18.8f} {v[1]:18.8f} {v[2]:18.8f}" for v in atoms.cell),
        "  | Atomic structure:",
        "  |       Atom                x [A]            y [A]            z [A]",
        *(
            f"  | {i + 1:4d}: Species {s:2s} {p[0]:18.8f} {p[1]:18.8f} {p[2]:18.8f}"
            for i, (s, p) in enumerate(
                zip(atoms.get_chemical_symbols(), atoms.positions, strict=True)
            )
        ),
        "  Begin self-consistency iteration #    1",
        "  Self-consistency cycle converged.",
        "  Total energy components:",
        f"  | Total energy uncorrected      : {energy - 1.0:20.10f} eV",
        f"  | Total energy corrected        : {energy - 1.0:20.10f} eV",
        f"  | Electronic free energy        : {energy:20.10f} eV",
        "  Total atomic forces (unitary forces cleaned) [eV/Ang]:",
        *(
            f"  | {i + 1:4d} {f[0]:20.12E} {f[1]:20.12E} {f[2]:20.12E}"
            for i, f in enumerate(atoms.get_forces())
        ),
        "  Leaving FHI-aims.",
        "  Have a nice day.",
        "------------------------------------------------------------",
    ]
    return "\n".join(lines) + "\n"


def test_aims_out_files_by_glob(tmp_path):
    frames = emt_frames(2)
    for i, atoms in enumerate(frames):
        (tmp_path / f"calc{i}").mkdir()
        (tmp_path / f"calc{i}" / "aims.out").write_text(aims_out_text(atoms))
    assert_same(read_labeled(tmp_path / "calc1" / "aims.out"), frames[1:], stress=False)
    user = read_user_frames(tmp_path / "calc*" / "aims.out", "user")
    assert_same(user, frames, stress=False)
    assert frame_ids(user) == ["user-0000", "user-0001"]


def outcar_text(frames, stress_kbar):
    """A minimal VASP OUTCAR: species and counts, then one ionic step per frame."""
    symbol = frames[0].get_chemical_symbols()[0]
    lines = [f" POTCAR:    PAW_PBE {symbol} 22Jun2005"] * 2
    lines += [f"   ions per type =  {len(frames[0]):14d}"]
    for n, (atoms, kbar) in enumerate(zip(frames, stress_kbar, strict=True)):
        energy = atoms.get_potential_energy()
        lines += [
            f"---------------- Iteration {n + 1:6d}(   1)  ----------------",
            "  in kB " + " ".join(f"{x:12.5f}" for x in kbar),
            "  direct lattice vectors                 reciprocal lattice vectors",
            *(f"  {v[0]:13.9f}{v[1]:13.9f}{v[2]:13.9f}   0 0 0" for v in atoms.cell),
            " POSITION                                       TOTAL-FORCE (eV/Angst)",
            " " + "-" * 83,
            *(
                f" {p[0]:12.5f}{p[1]:13.5f}{p[2]:13.5f}{f[0]:15.6f}{f[1]:14.6f}{f[2]:14.6f}"
                for p, f in zip(atoms.positions, atoms.get_forces(), strict=True)
            ),
            " " + "-" * 83,
            "  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)",
            "  ---------------------------------------------------",
            f"  free  energy   TOTEN  = {energy + 0.01:18.8f} eV",
            "",
            f"  energy  without entropy= {energy:18.8f}  energy(sigma->0) = {energy:18.8f}",
        ]
    return "\n".join(lines) + "\n"


def test_outcar_converts_kbar(tmp_path):
    frames = emt_frames(2)
    # VASP's order on the "in kB" line: XX YY ZZ XY YZ ZX
    stress_kbar = [[10.0 + i, 20.0, 30.0, 1.0, 2.0, 3.0] for i in range(2)]
    path = tmp_path / "OUTCAR"
    path.write_text(outcar_text(frames, stress_kbar))
    read = read_labeled(path)
    assert len(read) == 2
    for atoms, reference, kbar in zip(read, frames, stress_kbar, strict=True):
        np.testing.assert_allclose(atoms.positions, reference.positions, atol=1e-5)
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-6)
        # energy(sigma->0), not the free energy TOTEN (0.01 eV higher in this file)
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy())
        xx, yy, zz, xy, yz, zx = kbar
        expected = -np.array([xx, yy, zz, yz, zx, xy]) * 0.1 / 160.21766  # eV/A^3, ASE order
        np.testing.assert_allclose(atoms.get_stress(), expected, rtol=1e-5)


PUBLIC = Path(__file__).parents[1] / "data" / "public"  # real outputs, see SOURCES.md there


def test_real_fhi_aims_output_as_initial_data(tmp_path):
    """FHI-aims' own output (not written by these tests), found by name under a pattern."""
    text = (PUBLIC / "aims_singlepoint.out").read_text()
    energy = float(re.findall(r"\| Electronic free energy\s+:\s+\S+ Ha\s+(\S+) eV", text)[-1])
    block = text[text.rindex("Total atomic forces") :].splitlines()[1:4]
    forces = np.array([[float(x) for x in line.split()[2:5]] for line in block])
    (tmp_path / "calc" / "h2o").mkdir(parents=True)
    shutil.copy(PUBLIC / "aims_singlepoint.out", tmp_path / "calc" / "h2o" / "aims.out")
    (frame,) = read_user_frames(tmp_path / "calc" / "*" / "aims.out", "user")
    assert frame.get_chemical_symbols() == ["O", "H", "H"]
    assert frame.get_potential_energy() == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(frame.get_forces(), forces, atol=1e-8)
    assert frame.info["al_id"] == "user-0000"


def test_real_vasprun_xml_converts_its_stress():
    """A vasprun.xml of VASP itself: energy(sigma->0), forces, stress from kBar to eV/A^3."""
    root = ET.parse(PUBLIC / "vasprun_pstress.xml").getroot()
    last = root.findall("calculation")[-1]
    # with PSTRESS the step's energy block adds P*V (an enthalpy); the potential
    # energy is that of the last electronic step
    energy = float(last.findall("scstep")[-1].find("energy/i[@name='e_0_energy']").text)
    enthalpy = float(last.find("energy/i[@name='e_0_energy']").text)
    pstress_kbar = float(root.find("incar/i[@name='PSTRESS']").text)
    forces = np.array([v.text.split() for v in last.find("varray[@name='forces']")], float)
    kbar = np.array([v.text.split() for v in last.find("varray[@name='stress']")], float)
    (frame,) = read_labeled(PUBLIC / "vasprun_pstress.xml")
    assert frame.get_potential_energy() == pytest.approx(energy, abs=1e-6)
    pv = 0.1 * units.GPa * pstress_kbar * frame.get_volume()
    assert frame.get_potential_energy() == pytest.approx(enthalpy - pv, abs=1e-5)
    np.testing.assert_allclose(frame.get_forces(), forces, atol=1e-8)
    expected = -0.1 * units.GPa * kbar  # VASP's sign: positive kBar is compressive
    np.testing.assert_allclose(frame.get_stress(voigt=False), expected, atol=1e-8)
    assert abs(expected).max() > 0.05  # a real, non-zero stress
