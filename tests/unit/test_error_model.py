"""The per-atom error model of the spread and the novelty (almomd.ensemble.error_model)."""

import dataclasses

import numpy as np
import pytest

from almomd.ensemble.error_model import ErrorModel
from almomd.ensemble.novelty import NoveltyReference, combined
from almomd.ensemble.uncertainty import uncertainties


def held_out_atoms(a=2.0, b=0.1, n=20000, seed=0):
    """Atoms whose squared error has mean (a sigma)^2 + (b nu)^2 (a Gaussian vector error)."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.01, 0.1, n)
    nu = rng.uniform(0.2, 1.2, n)
    scale = np.sqrt(((a * sigma) ** 2 + (b * nu) ** 2) / 3.0)  # per component
    error = np.linalg.norm(rng.normal(size=(n, 3)) * scale[:, None], axis=1)
    return sigma, nu, error


def test_the_fit_recovers_the_coefficients_and_predicts_the_rmse():
    sigma, nu, error = held_out_atoms()
    model = ErrorModel.fit(sigma, nu, error)
    assert model.spread == pytest.approx(2.0, rel=0.05)
    assert model.novelty == pytest.approx(0.1, rel=0.05)
    assert model.n_atoms == len(error)
    # the predicted force RMSE of the held-out atoms is theirs
    assert model.rmse_fitted == pytest.approx(model.rmse, rel=1e-9)


def test_either_signal_alone_raises_it_where_a_product_cannot():
    sigma, nu, error = held_out_atoms(b=0.2)
    model = ErrorModel.fit(sigma, nu, error)
    bulk_sigma, bulk_nu = np.full(4, 0.067), np.full(4, 0.75)
    blind_sigma, new_nu = np.full(4, 0.046), np.full(4, 3.0)  # members agree, all wrong
    bulk = model.frame(bulk_sigma, bulk_nu)["force_error"]
    blind = model.frame(blind_sigma, new_nu)["force_error"]
    assert blind > 2.5 * bulk
    # the product of a blind spread and the novelty rises far less
    assert combined(blind_sigma, new_nu) < 2.5 * combined(bulk_sigma, bulk_nu)
    spread_only = model.frame(np.full(4, 0.5), bulk_nu)["force_error"]
    assert spread_only > 5 * bulk


def test_monotone_in_both_and_linear_far_out():
    model = ErrorModel(spread=2.0, novelty=0.1)
    sigma = np.linspace(0.0, 1.0, 11)
    assert np.all(np.diff(model.per_atom(sigma, np.full(11, 0.5))) > 0)
    assert np.all(np.diff(model.per_atom(np.full(11, 0.05), sigma * 10)) > 0)
    far = model.per_atom(np.array([0.0, 0.0]), np.array([10.0, 20.0]))
    assert far == pytest.approx([1.0, 2.0])  # twice as far, twice the error
    assert np.isinf(model.per_atom(np.array([0.01]), np.array([np.inf]))).all()


def test_frame_metrics_are_the_rms_and_the_largest_atom_per_component():
    model = ErrorModel(spread=1.0, novelty=0.0)
    found = model.frame(np.array([3.0, 4.0]), np.zeros(2))
    assert found["force_error"] == pytest.approx(np.sqrt((9 + 16) / 2 / 3))
    assert found["force_error_max"] == pytest.approx(4 / np.sqrt(3))


def test_the_additive_form_and_bad_input():
    sigma, nu, error = held_out_atoms()
    additive = ErrorModel.fit(sigma, nu, error, "additive")
    assert additive.form == "additive" and additive.spread > 0 and additive.novelty > 0
    assert additive.per_atom(np.array([0.1]), np.array([1.0]))[0] == pytest.approx(
        additive.spread * 0.1 + additive.novelty
    )
    assert additive.rmse_fitted == pytest.approx(additive.rmse, rel=1e-9)
    with pytest.raises(ValueError, match="form 'cubic'"):
        ErrorModel.fit(sigma, nu, error, "cubic")
    with pytest.raises(ValueError, match="fewer than 2 atoms"):
        ErrorModel.fit([0.1], [1.0], [np.nan])


def test_the_metrics_come_with_the_model_and_round_trip_with_the_reference(tmp_path):
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(2, 4, 3)) for _ in range(3)]
    reference = NoveltyReference.fit(features, [["Cu"] * 4] * 3, rng)
    model = ErrorModel.fit(*held_out_atoms())
    with_model = dataclasses.replace(reference, error_model=model)
    with_model.save(tmp_path / "novelty.npz")
    back = NoveltyReference.load(tmp_path / "novelty.npz")
    assert back.error_model == model
    assert NoveltyReference.load(tmp_path / "novelty.npz").n_members == 2
    reference.save(tmp_path / "plain.npz")
    assert NoveltyReference.load(tmp_path / "plain.npz").error_model is None
    forces = rng.normal(size=(2, 4, 3))
    nu = np.array([0.5, 0.8, 1.0, 4.0])
    found = uncertainties(np.zeros(2), forces, nu, model)
    assert found["force_error"] == pytest.approx(
        model.frame(np.sqrt(((forces - forces.mean(0)) ** 2).sum(2).mean(0)), nu)["force_error"]
    )
    assert "force_error" not in uncertainties(np.zeros(2), forces, nu)


def test_the_fitted_atoms_are_kept_and_summarized_per_system(tmp_path):
    import pandas as pd

    from almomd.ensemble.novelty import fitted_atoms

    sigma, nu, error = held_out_atoms(n=400)
    atoms = pd.DataFrame({"system": ["bulk"] * 300 + ["surface"] * 100, "sigma": sigma,
                          "novelty": nu, "error": error})  # fmt: skip
    model = ErrorModel.fit(sigma, nu, error)
    rng = np.random.default_rng(0)
    reference = NoveltyReference.fit([rng.normal(size=(2, 4, 3))] * 2, [["Cu"] * 4] * 2, rng)
    dataclasses.replace(reference, error_model=model).save(tmp_path / "n.npz", atoms)
    back = fitted_atoms(tmp_path / "n.npz")
    pd.testing.assert_frame_equal(back[atoms.columns], atoms)
    assert NoveltyReference.load(tmp_path / "n.npz").error_model == model
    found = model.summary(back)
    assert found["n_atoms"] == 400 and set(found["per_system"]) == {"bulk", "surface"}
    assert found["per_system"]["surface"]["n_atoms"] == 100
    assert found["novelty_max"] == pytest.approx(nu.max())
    assert found["rmse_predicted"] == pytest.approx(found["rmse"], rel=1e-9)
    assert found["spearman"]["predicted"] > found["spearman"]["novelty"]
    reference.save(tmp_path / "plain.npz")
    assert fitted_atoms(tmp_path / "plain.npz") is None
