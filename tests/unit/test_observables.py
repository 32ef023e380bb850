"""Observables of MD checked on cases with known answers: RDF, VDOS, MSD, sigma^A, intervals."""

import ase.build
import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT

from almomd.data.trajectories import Recorder, Trajectory, read_trajectories, write_trajectories
from almomd.observables import anharmonicity, structure, transport, vibrations
from almomd.observables.intervals import compare_curve, compare_number, estimate
from almomd.observables.measure import measure


def trajectory(atoms, positions, velocities=None, forces=None, timestep=1.0):
    """A Trajectory of ``atoms`` through ``positions`` (T, N, 3)."""
    steps = len(positions)
    zeros = np.zeros_like(positions)
    return Trajectory(
        atoms.get_chemical_symbols(), atoms.get_masses(), np.asarray(positions, float),
        zeros if velocities is None else velocities, np.zeros(steps),
        zeros if forces is None else forces, np.repeat(atoms.cell[None], steps, 0),
        timestep, 300.0,
    )  # fmt: skip


def emt_forces(atoms):
    atoms = atoms.copy()
    atoms.calc = EMT()
    return atoms.get_forces()


def test_the_rdf_of_an_ideal_crystal_peaks_at_its_neighbour_distances():
    a = 3.6
    crystal = ase.build.bulk("Cu", "fcc", a=a, cubic=True).repeat(3)
    r, g = structure.rdf(trajectory(crystal, [crystal.positions]), ("Cu", "Cu"), 5.2, 260)
    peaks = r[g > 0]
    assert peaks.min() == pytest.approx(a / np.sqrt(2), abs=0.02)  # 12 nearest neighbours
    assert np.any(np.abs(peaks - a) < 0.02)  # 6 second neighbours
    # the coordination number: 12 atoms in the first shell
    rho = len(crystal) / crystal.get_volume()
    shell = r < 3.0
    dr = r[1] - r[0]
    assert np.sum(4 * np.pi * r[shell] ** 2 * rho * g[shell] * dr) == pytest.approx(12, rel=0.02)
    # a rotated cell gives the same RDF (fractional coordinates into freud's box)
    rotated = crystal.copy()
    rotated.rotate(30, "z", rotate_cell=True)
    r2, g2 = structure.rdf(trajectory(rotated, [rotated.positions]), ("Cu", "Cu"), 5.2, 260)
    np.testing.assert_allclose(g2, g, atol=1e-6)


def test_partial_rdf_of_zincblende():
    a = 6.05
    crystal = ase.build.bulk("CuI", "zincblende", a=a, cubic=True).repeat(2)
    r, g = structure.rdf(trajectory(crystal, [crystal.positions]), ("Cu", "I"), 5.0, 250)
    assert r[g > 0].min() == pytest.approx(a * np.sqrt(3) / 4, abs=0.02)
    r, g = structure.rdf(trajectory(crystal, [crystal.positions]), ("Cu", "Cu"), 5.0, 250)
    assert r[g > 0].min() == pytest.approx(a / np.sqrt(2), abs=0.02)
    assert structure.element_pairs(crystal.get_chemical_symbols()) == [
        ("Cu", "Cu"), ("Cu", "I"), ("I", "I")
    ]  # fmt: skip


def test_the_vdos_of_known_oscillations_peaks_at_their_frequencies():
    crystal = ase.build.bulk("CuI", "zincblende", a=6.05, cubic=True)
    steps, dt = 4000, 2.0  # fs
    t = np.arange(steps) * dt
    rng = np.random.default_rng(0)
    frequency = {"Cu": 5.0, "I": 2.0}  # THz
    velocities = np.zeros((steps, len(crystal), 3))
    for i, symbol in enumerate(crystal.get_chemical_symbols()):
        phase = rng.uniform(0, 2 * np.pi, 3)
        velocities[:, i, :] = np.sin(2 * np.pi * frequency[symbol] / 1000 * t[:, None] + phase)
    found = trajectory(crystal, np.zeros_like(velocities), velocities, timestep=dt)
    for element, expected in frequency.items():
        f, spectrum = vibrations.vdos(found, element, 500)
        assert f[np.argmax(spectrum)] == pytest.approx(expected, abs=1.0 / (500 * dt) * 1000)
        assert np.trapezoid(spectrum, f) == pytest.approx(1.0)
    grid = np.linspace(0, 20, 400)
    cu = vibrations.on_grid(*vibrations.vdos(found, "Cu", 500), grid)
    iodine = vibrations.on_grid(*vibrations.vdos(found, "I", 500), grid)
    assert vibrations.overlap(cu, cu, grid) == pytest.approx(1.0, abs=1e-6)
    assert vibrations.overlap(cu, iodine, grid) < 0.1


def test_msd_of_free_and_diffusing_particles():
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    steps, dt = 400, 1.0
    t = np.arange(steps) * dt
    v = np.array([0.01, -0.02, 0.005])  # A/fs, free flight
    ballistic = trajectory(atoms, atoms.positions + t[:, None, None] * v)
    lag, msd = transport.msd(ballistic, "Cu", 100)
    # freud sums by FFT in single precision: about 1e-6 of the largest value
    np.testing.assert_allclose(msd, (v @ v) * lag**2, atol=1e-5 * msd.max())
    rng = np.random.default_rng(1)
    walkers = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(4)  # 256 random walkers
    step = 0.05  # A per direction per fs: D = step^2 / 2 per direction
    walk = np.cumsum(rng.normal(0, step, (4000, len(walkers), 3)), axis=0) * 1.0
    diffusing = trajectory(walkers, walkers.positions + walk)
    lag, msd = transport.msd(diffusing, "Cu", 400)
    expected = step**2 / 2 * transport.A2_PER_PS  # A^2/ps
    assert transport.diffusion(lag, msd) == pytest.approx(expected, rel=0.1)
    assert transport.diffuses(msd)
    # an atom that vibrates about its site does not diffuse, whatever its amplitude
    vibrating = trajectory(walkers, walkers.positions + rng.normal(0, 0.7, walk.shape))
    assert not transport.diffuses(transport.msd(vibrating, "Cu", 400)[1])


def test_sigma_a_is_zero_for_a_harmonic_crystal_and_grows_with_amplitude():
    ideal = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    harmonic, labeled = anharmonicity.fit_harmonic(ideal, emt_forces)
    assert labeled == 2  # the ideal structure and fcc's one displacement
    rng = np.random.default_rng(0)
    # displaced by up to a lattice vector: the nearest image of each site counts
    shifted = ideal.positions + ideal.cell[0] + rng.normal(0, 0.02, (5, len(ideal), 3))
    exact = trajectory(ideal, shifted, forces=harmonic.forces(shifted))
    np.testing.assert_allclose(anharmonicity.sigma_a_series(exact, harmonic), 0.0, atol=1e-10)
    scores = []
    for amplitude in (0.01, 0.1, 0.2):
        positions = ideal.positions + rng.normal(0, amplitude, (4, len(ideal), 3))
        forces = []
        for p in positions:
            atoms = ideal.copy()
            atoms.positions = p
            forces.append(emt_forces(atoms))
        real = trajectory(ideal, positions, forces=np.array(forces))
        scores.append(anharmonicity.sigma_a(real, harmonic))
    assert scores[0] < 0.05  # nearly harmonic at small amplitude
    assert scores[0] < scores[1] < scores[2]


def test_intervals_separate_statistical_noise_from_model_spread():
    rng = np.random.default_rng(2)
    # 4 members that agree, each trajectory noisy: no model spread
    per = [1.0 + rng.normal(0, 0.01) for _ in range(4)]
    blocks = [[p + rng.normal(0, 0.02) for _ in range(4)] for p in per]
    same = estimate(per, blocks, model=True)
    assert float(same.model) < 0.02
    # members that differ by far more than their noise: the model spread shows it
    per = [1.0, 1.05, 1.1, 1.15]
    blocks = [[p + rng.normal(0, 0.002) for _ in range(4)] for p in per]
    apart = estimate(per, blocks, model=True)
    assert float(apart.model) == pytest.approx(np.std(per, ddof=1), rel=0.05)
    reference = estimate([1.1, 1.1], [[1.1, 1.1], [1.1, 1.1]], model=False)
    assert compare_number(apart, reference)["agree"]  # 1.1 is inside the members' spread
    assert not compare_number(same, reference)["agree"]  # 1.0 +- 0.01 is not 1.1
    assert compare_number(same, None)["agree"] is None  # no reference: no claim
    # members 20-40 % apart hold the reference, but that says nothing: no verdict
    wide = estimate([0.7, 1.1, 1.5], [[0.7] * 2, [1.1] * 2, [1.5] * 2], model=True)
    found = compare_number(wide, reference)
    assert found["agree"] is None and "disagree too much" in found["note"]
    grid = np.linspace(0, 1, 50)
    curve = estimate([np.ones(50)] * 2, [[np.ones(50)] * 2] * 2, model=True)
    noisy = estimate([np.ones(50) * 1.5] * 2, [[np.ones(50) * 1.5] * 2] * 2, model=False)
    assert compare_curve(grid, curve, curve)["agree"]
    assert not compare_curve(grid, curve, noisy)["agree"]
    # pairs the reference never brings this close, and the MLIP does: a disagreement
    empty = estimate([np.zeros(50)] * 2, [[np.zeros(50)] * 2] * 2, model=False)
    assert compare_curve(grid, curve, empty)["agree"] is False


def test_trajectories_are_kept_whole(tmp_path):
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    recorder = Recorder("reference c0-t0", 2.0, 600.0)
    for k in range(3):
        atoms.set_velocities(np.full((len(atoms), 3), 0.01 * k) / units.fs)  # 0.01k A/fs
        recorder.add(atoms, -1.0 * k, np.full((len(atoms), 3), k), u_force_max=0.1 * k)
    first = recorder.trajectory()
    second = recorder.trajectory("min_distance at 4 fs")
    write_trajectories(tmp_path / "d.npz", [first, second])
    back = read_trajectories(tmp_path / "d.npz")
    assert [t.name for t in back] == ["reference c0-t0"] * 2
    assert back[1].stopped == "min_distance at 4 fs" and back[0].stopped == ""
    np.testing.assert_allclose(back[0].velocities[2], 0.02)
    np.testing.assert_allclose(back[0].extra["u_force_max"], [0.0, 0.1, 0.2])
    assert back[0].timestep == 2.0 and back[0].duration == 4.0
    assert back[0].symbols == atoms.get_chemical_symbols()
    np.testing.assert_allclose(back[0].atoms(2).get_velocities() * units.fs, 0.02)


def test_measure_finds_the_same_dynamics_agree_and_other_dynamics_not():
    """Harmonic-like thermal motion of fcc Cu: one amplitude for the 'reference', the same
    for 'members' (agree), and twice it for members of another potential (disagree)."""
    ideal = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    harmonic, _ = anharmonicity.fit_harmonic(ideal, emt_forces)
    frequency = 6.0 / 1000  # 1/fs

    def run(seed, amplitude):
        rng = np.random.default_rng(seed)
        t = np.arange(400)[:, None, None] * 2.0
        phase = rng.uniform(0, 2 * np.pi, (1, len(ideal), 3))
        scale = amplitude * rng.uniform(0.5, 1.5, (1, len(ideal), 3))
        u = scale * np.sin(2 * np.pi * frequency * t + phase)
        velocity = scale * 2 * np.pi * frequency * np.cos(2 * np.pi * frequency * t + phase)
        positions = ideal.positions + u
        return trajectory(ideal, positions, velocity, harmonic.forces(positions), 2.0)

    reference = [run(s, 0.1) for s in (1, 2)]
    same = [run(s, 0.1) for s in (3, 4, 5, 6)]
    hotter = [run(s, 0.2) for s in (3, 4, 5, 6)]
    verdict, curves = measure(same, reference, harmonic, blocks=4)
    assert verdict["rdf"]["agree"] and verdict["msd"]["agree"], verdict
    assert verdict["diffusion"]["note"] == "no element diffuses"
    assert verdict["sigma_a"]["parts"]["all"]["value"] == pytest.approx(0.0, abs=1e-8)
    off, _ = measure(hotter, reference, harmonic, blocks=4)
    assert off["rdf"]["agree"] is False and off["msd"]["agree"] is False
    assert off["msd"]["parts"]["Cu"]["ratio"] == pytest.approx(4.0, rel=0.3)
    assert "rdf/Cu-Cu/reference" in curves and "sigma_a/model/0" in curves
    alone, _ = measure(same, None, harmonic, blocks=4)
    assert alone["rdf"]["agree"] is None and "reference" not in alone["msd"]["parts"]["Cu"]


def test_a_users_md_file_becomes_a_trajectory_unwrapped(tmp_path):
    """aiMD codes write wrapped positions and may give no velocities: the trajectory's
    displacements are the true ones, and its velocities their central differences."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from almomd.data.importers import read_labeled
    from almomd.data.trajectories import from_frames

    crystal = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    v = np.array([0.05, 0.0, -0.02])  # A/fs: atom 0 crosses the cell wall
    frames = []
    for step in range(40):
        atoms = crystal.copy()
        atoms.positions[0] += v * step * 2.0
        atoms.wrap()
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((4, 3)))
        frames.append(atoms)
    ase.io.write(tmp_path / "aimd.extxyz", frames)
    found = from_frames(read_labeled(tmp_path / "aimd.extxyz"), 2.0, 300.0, "aimd")
    np.testing.assert_allclose(found.positions[-1, 0] - found.positions[0, 0], v * 78.0, atol=1e-6)
    np.testing.assert_allclose(found.velocities[:, 0], np.tile(v, (40, 1)), atol=1e-6)
    lag, msd = transport.msd(found, "Cu", 10)
    assert msd[-1] == pytest.approx((v @ v) * 18.0**2 / 4, rel=1e-3)  # one atom of four moves


def test_a_users_reference_dynamics_must_match_the_conditions():
    from conftest import REPO, test_config_with

    from almomd.errors import ConfigError
    from almomd.settings.schema import validate_config

    def change(config):
        config["observables"] = {"reference": ["missing.extxyz"], "reference_timestep": 2.0}

    with pytest.raises(ConfigError, match=r"observables.reference: 1 files for 2 exploration"):
        validate_config(test_config_with(change), REPO / ".test")

    def audit(config):
        config["heldout"] = {"source": "audit"}
        config["convergence"]["observables"] = ["rdf"]

    with pytest.raises(ConfigError, match="convergence.observables: rdf are judged against"):
        validate_config(test_config_with(audit), REPO / ".test")
