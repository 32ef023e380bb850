"""The file-based labelers we cannot run here (FHI-aims, VASP, CP2K), up to their inputs.

Each is built through almomd's labeler settings, as a campaign builds it, and
writes (or generates) its input for a Cu frame; the checks read the code's own
input syntax.
"""

from ase.build import bulk

from almomd.labeling.labelers import Labeler, LabelerSettings


def frame():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.02, seed=1)
    return atoms


def test_aims_writes_control_and_geometry(tmp_path):
    species = tmp_path / "species"
    species.mkdir()
    (species / "29_Cu_default").write_text("  species        Cu\n    nucleus             29.\n")
    settings = LabelerSettings(
        name="aims",
        parameters={"species_dir": str(species), "xc": "pbe", "k_grid": [3, 3, 3]},
    )
    labeler = Labeler(settings, launcher="srun -n 4")
    assert labeler.command() == "srun -n 4 aims.x"
    directory = tmp_path / "calc" / "frame"
    calc = labeler.calculator(directory)
    calc.write_inputfiles(frame(), ["energy", "forces"])
    control = (directory / "control.in").read_text()
    assert "xc" in control and "pbe" in control and "k_grid" in control and "3 3 3" in control
    assert "species        Cu" in control  # the species file from species_dir
    geometry = (directory / "geometry.in").read_text()
    assert geometry.count("atom_frac ") == 4 and geometry.count("lattice_vector") == 3


def test_vasp_writes_incar_poscar_kpoints_potcar(tmp_path, monkeypatch):
    potcar = tmp_path / "potentials" / "potpaw_PBE" / "Cu"
    potcar.mkdir(parents=True)
    (potcar / "POTCAR").write_text(
        "  PAW_PBE Cu 22Jun2005\n   TITEL  = PAW_PBE Cu 22Jun2005\n   ZVAL   =   11.000\n"
        " End of Dataset\n"
    )
    monkeypatch.setenv("VASP_PP_PATH", str(tmp_path / "potentials"))
    settings = LabelerSettings(
        name="vasp", parameters={"xc": "pbe", "encut": 400, "kpts": [4, 4, 4]}
    )
    directory = tmp_path / "calc" / "frame"
    calc = Labeler(settings).calculator(directory)
    calc.write_input(frame())
    incar = dict(
        (part.strip() for part in line.split("=", 1))
        for line in (directory / "INCAR").read_text().splitlines()
    )
    assert float(incar["ENCUT"]) == 400 and incar["GGA"] == "PE"
    assert (directory / "KPOINTS").read_text().splitlines()[3].split() == ["4", "4", "4"]
    assert "Cu" in (directory / "POSCAR").read_text()
    assert "PAW_PBE Cu" in (directory / "POTCAR").read_text()


FAKE_CP2K_SHELL = """#!/usr/bin/env bash
# answers the cp2k_shell handshake (READY, VERSION, HARSH) and EXIT, as CP2K does
echo "* READY"
while read -r line; do
  case "$line" in
    VERSION) echo "CP2K Shell Version: 6.1"; echo "* READY";;
    EXIT) exit 0;;
    *) echo "* READY";;
  esac
done
"""


def test_cp2k_starts_its_shell_and_generates_its_input(tmp_path):
    shell = tmp_path / "bin" / "cp2k_shell.psmp"
    shell.parent.mkdir()
    shell.write_text(FAKE_CP2K_SHELL)
    shell.chmod(0o755)
    settings = LabelerSettings(
        name="cp2k",
        command=f"{{launcher}} '{shell}'",
        parameters={"cutoff": 300 * 27.211, "xc": "PBE", "max_scf": 30},
    )
    labeler = Labeler(settings)
    calc = labeler.calculator(tmp_path / "calc" / "frame")
    try:
        calc.atoms = frame()
        text = calc._generate_input()
    finally:
        calc.close()
    assert "&FORCE_EVAL" in text and "&XC_FUNCTIONAL" in text and "&PBE" in text
    assert "MAX_SCF 30" in text and "CUTOFF" in text
    assert "Cu" in text  # the kinds of the frame
