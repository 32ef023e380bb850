"""The novelty reference: distances in feature space, in units of the training set's spacing."""

import numpy as np
import pytest

from almomd.ensemble.novelty import (
    WHITENING_REGULARIZATION,
    NoveltyReference,
    combined,
    nearest_distances,
)
from almomd.ensemble.uncertainty import uncertainties


def grid_frames(offsets, members=2):
    """Frames of 4 atoms with 1-d features ``offset + 0, 1, 2, 3`` (member m: times m+1)."""
    frames = []
    for offset in offsets:
        base = offset + np.arange(4.0)[:, None]
        frames.append(np.stack([(m + 1) * base for m in range(members)]))
    return frames


def test_nearest_distances_by_hand():
    reference = np.array([[0.0, 0.0], [3.0, 4.0]])
    queries = np.array([[0.0, 1.0], [3.0, 5.0], [6.0, 8.0]])
    np.testing.assert_allclose(nearest_distances(queries, reference), [1.0, 1.0, 5.0])
    assert np.isinf(nearest_distances(queries, reference[:0])).all()


def test_novelty_is_distance_over_spacing_averaged_over_members():
    # two frames whose atoms interleave at spacing 0.5: every training atom is 0.5
    # from the nearest atom of the other frame, for member 0; 1.0 for member 1
    frames = grid_frames([0.0, 0.5])
    symbols = [["Cu"] * 4, ["Cu"] * 4]
    reference = NoveltyReference.fit(frames, symbols, np.random.default_rng(0))
    # in whitened units: 0.5 over the training features' regularised standard deviation
    std = np.sqrt(np.var(np.arange(0.0, 4.0, 0.5), ddof=1) * (1 + WHITENING_REGULARIZATION))
    assert reference.spacing[0]["Cu"] == pytest.approx(0.5 / std)
    assert reference.spacing[1]["Cu"] == pytest.approx(0.5 / std)  # member 1: twice the scale
    inside = reference.novelty(grid_frames([0.25])[0], ["Cu"] * 4)
    np.testing.assert_allclose(inside, 0.5)  # halfway between training atoms
    far = reference.novelty(grid_frames([10.0])[0], ["Cu"] * 4)
    # features 10..13 (member 0) lie 6.5..9.5 beyond the last training atom at 3.5
    np.testing.assert_allclose(far, (np.arange(4.0) + 6.5) / 0.5)
    assert reference.novelty(grid_frames([0.0])[0], ["Cu", "Cu", "Cu", "Ag"])[3] == np.inf


def test_a_step_where_the_training_set_never_varies_is_newer_than_one_where_it_does():
    """Training atoms spread 2 along x and 0.02 along y: a step of 0.3 along y (where they
    never vary) is new, the same step along x is not."""
    rng = np.random.default_rng(1)
    frames = [np.stack([np.column_stack([rng.uniform(-2, 2, 8), rng.normal(0, 0.02, 8)])])
              for _ in range(20)]  # fmt: skip
    reference = NoveltyReference.fit(frames, [["Cu"] * 8] * 20, rng)
    along_x, along_y = reference.novelty(np.array([[[0.3, 0.0], [0.0, 0.3]]]), ["Cu", "Cu"])
    assert along_x < 1.0 < along_y and along_y > 10 * along_x


def test_elements_are_kept_apart_and_the_file_round_trips(tmp_path):
    frames = grid_frames([0.0, 0.5, 1.0])
    symbols = [["Cu", "Cu", "I", "I"]] * 3
    reference = NoveltyReference.fit(frames, symbols, np.random.default_rng(0))
    # an I atom at a Cu atom's features is compared with the I atoms only
    query = np.stack([np.array([[0.0], [3.0]]), np.array([[0.0], [6.0]])])
    found = reference.novelty(query, ["I", "I"])
    assert found[0] > 1.0 and found[1] < 1.0
    reference.save(tmp_path / "novelty.npz")
    loaded = NoveltyReference.load(tmp_path / "novelty.npz")
    np.testing.assert_array_equal(loaded.novelty(query, ["I", "I"]), found)
    assert loaded.spacing == reference.spacing
    # a reference of an earlier version (plain distances, no whitening) still loads
    with np.load(tmp_path / "novelty.npz") as stored:
        plain = {k: stored[k] for k in stored.files if k.endswith(("features", "spacing"))}
    np.savez(tmp_path / "plain.npz", **plain)
    old = NoveltyReference.load(tmp_path / "plain.npz")
    np.testing.assert_array_equal(old.features[0]["I"], reference.features[0]["I"])
    assert (old.whitening[0]["I"].transform == np.eye(1)).all()
    with pytest.raises(ValueError, match="refit it"):
        reference.novelty(query[:1], ["I", "I"])


def test_the_combination_scales_the_spread_only_beyond_the_training_set():
    sigma = np.array([0.2, 0.1, 0.05])
    assert combined(sigma, np.array([0.3, 0.9, 0.5])) == pytest.approx(0.2)
    assert combined(sigma, np.array([0.3, 4.0, 0.5])) == pytest.approx(0.4)
    forces = np.zeros((2, 3, 3))
    forces[0, :, 0], forces[1, :, 0] = sigma, -sigma  # spread sigma_i per atom
    u = uncertainties(np.zeros(2), forces, np.array([0.3, 4.0, 0.5]))
    assert u["novelty"] == pytest.approx(4.0)
    assert u["force_max_novelty"] == pytest.approx(0.4)
    assert "novelty" not in uncertainties(np.zeros(2), forces)
