"""Initial candidate frames: rattled copies and MD snapshots, picked for spread."""

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from almomd.exploration import initial
from almomd.settings.sections import InitialData


def test_farthest_point_sampling_picks_the_spread_out_points():
    points = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    # from 0: 11 is farthest; then 2 (2 from 0) beats 10 and 1 (1 from a kept point)
    assert initial.farthest_apart(points, 3) == [0, 2, 4]
    assert initial.farthest_apart(points, 9) == [0, 1, 2, 3, 4]


class Described(EMT):
    """EMT whose results carry a descriptor (the positions' spread), as a package's do."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes or ["positions"])
        self.results["descriptor"] = np.std(self.atoms.positions, axis=0)


def test_md_snapshots_at_each_temperature_and_picked_from_a_pool():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    settings = InitialData(n_frames=6, md_fraction=0.5, md_steps_between=2, md_pool=3)
    rng = np.random.default_rng(1)
    frames = initial.generate_for(atoms, settings, rng, Described(), [300.0, 900.0])
    assert len(frames) == 6  # 3 rattled, 3 from MD (2 at 300 K, 1 at 900 K)
    md = frames[3:]
    assert all(a.calc is None and not a.constraints for a in md)
    assert len({a.positions.tobytes() for a in md}) == 3


def test_the_pool_keeps_the_snapshots_farthest_apart_of_the_same_trajectory():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    every = initial.md_snapshots(atoms, 6, Described(), 600.0, 2, np.random.default_rng(5))
    kept = initial.md_snapshots(atoms, 2, Described(), 600.0, 2, np.random.default_rng(5), pool=3)
    features = np.array([np.std(a.positions, axis=0) for a in every])
    expected = [every[i] for i in initial.farthest_apart(features, 2)]
    assert [a.positions.tolist() for a in kept] == [a.positions.tolist() for a in expected]
