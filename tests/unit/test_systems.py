"""Several systems in one campaign: structures, walkers, conditions, thresholds, figures."""

import math

import numpy as np
import pytest
from ase.build import bulk
from conftest import REPO, test_config_with

from almomd.data.frames import UNASSIGNED, system_of
from almomd.errors import ConfigError
from almomd.evaluation import convergence, heldout
from almomd.reporting.status import system_figures
from almomd.selection.select import select, summary_by_system, uncertain_fraction
from almomd.settings import systems
from almomd.settings.campaign import conditions, walkers
from almomd.settings.files import structures
from almomd.settings.schema import validate_config
from almomd.settings.sections import Convergence, Selection

BULK = {"name": "bulk", "structure": "cu.xyz", "supercell": [2, 2, 2]}


def two_systems(config, **vacancy):
    config.pop("system")
    config["systems"] = [dict(BULK), {"name": "vacancy", "from": "bulk", "remove": [0]} | vacancy]


def completed(change):
    return validate_config(test_config_with(change), REPO / ".test")


def test_a_single_system_is_a_list_of_one_named_by_its_file():
    config = completed(lambda c: None)
    assert "system" not in config
    assert systems.names(config) == ["cu"]
    assert [w.system for w in walkers(config)] == ["cu", "cu"]  # temperatures [600, 900]


def test_derived_systems_change_the_parents_supercell():
    def change(config):
        config.pop("system")
        config["systems"] = [
            dict(BULK),
            {"name": "vacancy", "from": "bulk", "remove": [0, 5]},
            {"name": "alloy", "from": "bulk", "substitute": [{"index": 3, "symbol": "Ni"}]},
            {"name": "interstitial", "from": "vacancy",
             "insert": [{"symbol": "Cu", "position": [0.25, 0.25, 0.25]}]},
        ]  # fmt: skip

    config = completed(change)
    built = structures(config, REPO / ".test")
    parent = built["bulk"]
    assert len(parent) == 32
    vacancy = built["vacancy"]
    assert len(vacancy) == 30
    kept = [i for i in range(32) if i not in (0, 5)]
    np.testing.assert_allclose(vacancy.positions, parent.positions[kept])
    assert built["alloy"].get_chemical_symbols()[3] == "Ni"
    assert built["alloy"].get_chemical_symbols().count("Cu") == 31
    inserted = built["interstitial"]
    assert len(inserted) == 31
    np.testing.assert_allclose(inserted.positions[-1], 0.25 * parent.cell.array.sum(axis=0))


def derived(**changes):
    return {"name": "v", "from": "bulk"} | changes


@pytest.mark.parametrize(
    ("systems_given", "message"),
    [
        ([BULK, BULK], "systems\\[bulk\\]: the name is used twice"),
        ([derived(remove=[0]), BULK], "'bulk' is not a system listed before"),
        ([BULK, derived(structure="cu.xyz")], "give either structure"),
        ([BULK, {"name": "v", "structure": "cu.xyz", "remove": [0]}], "v\\].remove: changes"),
        ([BULK, derived(supercell=[1, 1, 2])], "a derived system has its parent"),
        ([BULK, derived(remove=[32])], "indices \\[32\\] must lie in 0..31"),
        ([BULK, derived(substitute=[{"index": 0, "symbol": "Xx"}])], "'Xx' is not a chemical"),
        ([BULK, {"name": "v", "structure": "no.xyz"}], "v\\].structure: file 'no.xyz' does not"),
    ],
)
def test_bad_systems_are_refused_naming_the_key(systems_given, message):
    def change(config):
        config.pop("system")
        config["systems"] = [dict(s) for s in systems_given]

    with pytest.raises(ConfigError, match=message):
        completed(change)


def test_system_and_systems_together_are_refused():
    with pytest.raises(ConfigError, match="give exactly one of them"):
        completed(lambda c: c.update(systems=[dict(BULK)]))


def test_a_system_has_its_own_walkers_and_conditions():
    bias = {"strength": 2.0, "width": 0.05}
    config = completed(
        lambda c: two_systems(c, exploration={"temperatures": [800], "replicas": 2, "bias": bias})
    )
    found = walkers(config)
    assert [(w.system, w.temperature, w.replica) for w in found] == [
        ("bulk", 600.0, 0), ("bulk", 900.0, 0), ("vacancy", 800.0, 0), ("vacancy", 800.0, 1),
    ]  # fmt: skip
    assert [w.index for w in found] == [0, 1, 2, 3]
    assert systems.exploration(config, "vacancy")["bias"] == bias | {
        "width_factor": 2.0,
        "warmup_steps": 20,
    }
    assert systems.exploration(config, "bulk")["bias"] is None
    assert systems.exploration(config, "vacancy")["steps"] == config["exploration"]["steps"]
    labels = [(c.system, c.label) for c in conditions(config)]
    assert labels == [("bulk", "bulk 600 K"), ("bulk", "bulk 900 K"), ("vacancy", "vacancy 800 K")]
    assert heldout.condition_label(conditions(config), "vacancy", 800.0) == "vacancy 800 K"


def test_frames_without_a_system_are_told_by_composition():
    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    vacancy = cell.copy()
    del vacancy[0]
    alloy = cell.copy()
    alloy[1].symbol = "Ni"
    frames = [cell.copy(), vacancy.copy(), alloy.copy(), cell.repeat(2)]
    frames[3].info["al_system"] = "given"
    systems.tag(frames, {"bulk": cell, "vacancy": vacancy})
    assert [system_of(a) for a in frames] == [
        "bulk",
        "vacancy",
        UNASSIGNED,
        "given",
    ]
    only = [alloy.copy()]
    systems.tag(only, {"bulk": cell})  # one system: every frame is its
    assert system_of(only[0]) == "bulk"


def system_frames(name, n, walker, rng):
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.info.update(al_id=f"{name}{i}", al_walker=walker, al_step=i, md_time_fs=100.0 * i,
                          al_system=name)  # fmt: skip
        frames.append(atoms)
    return frames


def test_each_system_is_judged_by_thresholds_from_its_own_frames():
    rng = np.random.default_rng(0)
    frames = system_frames("bulk", 20, 0, rng) + system_frames("vacancy", 20, 1, rng)
    # the vacancy is intrinsically more uncertain than the bulk
    u = np.concatenate([rng.normal(0.10, 0.01, 20), rng.normal(0.50, 0.05, 20)])
    own = {"bulk": rng.normal(0.10, 0.01, 30), "vacancy": rng.normal(0.50, 0.05, 30)}
    rule = Selection(shift=1.0, max_frames=40, min_frame_distance=0.0, min_time_separation=0.0)
    table = select(frames, u, np.concatenate(list(own.values())), rule,
                   np.random.default_rng(1), calibration_by_system=own)  # fmt: skip
    for name, values in own.items():
        rows = table[table["system"] == name]
        assert rows["threshold"].unique() == pytest.approx([values.mean() + values.std()])
        assert set(rows["calibration_scope"]) == {"system"}
        # both systems get labels: their frames above their own threshold
        assert 0 < rows["selected"].sum() < len(rows)
    per_system = summary_by_system(table)
    assert per_system["vacancy"]["n_selected"] == table.query("system == 'vacancy'").selected.sum()
    assert per_system["bulk"]["threshold"] == pytest.approx(own["bulk"].mean() + own["bulk"].std())
    # the pooled calibration, for comparison, starves the bulk of labels
    pooled = select(frames, u, np.concatenate(list(own.values())), rule, np.random.default_rng(1))
    assert pooled["threshold"].nunique() == 1
    assert pooled.query("system == 'bulk'").selected.sum() == 0
    assert uncertain_fraction(pooled[pooled["system"] == "bulk"]) == 0.0
    assert 0.0 < uncertain_fraction(table[table["system"] == "bulk"]) < 0.5


def test_a_system_without_calibration_frames_takes_the_pooled_ones():
    rng = np.random.default_rng(2)
    frames = system_frames("bulk", 5, 0, rng) + system_frames("surface", 5, 1, rng)
    pooled = np.array([0.1, 0.2, 0.3])
    table = select(frames, rng.uniform(0, 1, 10), pooled, Selection(), rng,
                   calibration_by_system={"bulk": np.array([0.5, 0.7])})  # fmt: skip
    surface = table[table["system"] == "surface"]
    assert set(surface["calibration_scope"]) == {"pooled"}
    assert surface["threshold"].iloc[0] == pytest.approx(pooled.mean() + 2.0 * pooled.std())
    bulk_rows = table[table["system"] == "bulk"]
    assert bulk_rows["threshold"].iloc[0] == pytest.approx(0.6 + 2.0 * 0.1)


def heldout_table(errors_by_system):
    rows = []
    for name, (errors, u) in errors_by_system.items():
        for error, value in zip(errors, u, strict=True):
            rows.append({"system": name, "n_atoms": 32, "force_rmse": error,
                         "energy_error_per_atom": 0.001, "u_force_max": value})  # fmt: skip
    import pandas as pd

    return pd.DataFrame(rows)


def test_heldout_errors_and_overconfidence_are_reported_per_system():
    rng = np.random.default_rng(3)
    bulk_errors = rng.uniform(0.04, 0.06, 12)
    defect_errors = 2 * bulk_errors  # twice the error ...
    u = rng.uniform(0.09, 0.11, 12)  # ... at the same uncertainty: overconfident there
    table = heldout_table({"bulk": (bulk_errors, u), "vacancy": (defect_errors, u)})
    summary = heldout.summarize(table, rng, "u_force_max", 0.07, None, 0.5)
    bulk_fig, vacancy_fig = summary["per_system"]["bulk"], summary["per_system"]["vacancy"]
    assert bulk_fig["n_frames"] == vacancy_fig["n_frames"] == 12
    assert bulk_fig["force_rmse"] == pytest.approx(np.sqrt(np.mean(bulk_errors**2)))
    assert vacancy_fig["error_to_uncertainty"] == pytest.approx(
        2 * bulk_fig["error_to_uncertainty"]
    )
    assert bulk_fig["error_to_uncertainty"] == pytest.approx(
        np.sqrt(np.mean(bulk_errors**2)) / np.sqrt(np.mean(u**2))
    )
    pooled = np.sqrt(np.mean(np.r_[bulk_errors, defect_errors] ** 2)) / np.sqrt(np.mean(u**2))
    assert summary["error_to_uncertainty"] == pytest.approx(pooled)
    assert vacancy_fig["overconfidence"] == pytest.approx(
        vacancy_fig["error_to_uncertainty"] / pooled
    )
    assert vacancy_fig["overconfidence"] > 1 > bulk_fig["overconfidence"]
    assert vacancy_fig["novelty"] is None  # the table has no novelty column
    table["u_novelty"] = np.r_[np.full(12, 0.5), np.full(12, 3.0)]
    with_novelty = heldout.summarize(table, rng, "u_force_max", 0.07, None, 0.5)
    assert with_novelty["per_system"]["vacancy"]["novelty"] == pytest.approx(3.0)
    assert with_novelty["novelty"] == pytest.approx(1.75)
    # all frames together are below the target, the vacancy alone is not: not converged
    summary |= {"source": "reference_md", "covers_conditions": True}
    summary["force_rmse_ci"] = [0.05, 0.06]
    decision = convergence.decide(
        0, 3, summary, [math.nan], 4, Convergence(force_rmse=0.07, uncertain_fraction=None)
    )
    names = {f.name: f.ok for f in decision.decided_by}
    assert names["force_rmse"] is True
    assert names["force_rmse[bulk]"] is True
    assert names["force_rmse[vacancy]"] is False
    assert not decision.converged and "vacancy held-out force RMSE" in decision.reason


def test_status_carries_each_systems_figures():
    bulk_selection = {"n_selected": 3, "n_candidates": 11, "threshold": 0.1}
    selection = {"per_system": {"bulk": bulk_selection, "vacancy": {"n_selected": 1}}}
    vacancy_held = {
        "n_frames": 4,
        "force_rmse": 0.2,
        "force_rmse_ci": [0.1, 0.3],
        "energy_rmse": 0.01,
        "spearman": {"rho": 0.5},
        "error_to_uncertainty": 2.0,
        "overconfidence": 1.5,
        "novelty": 2.5,
    }
    held = {"per_system": {"vacancy": vacancy_held}}
    figures = system_figures(selection, held)
    assert list(figures) == ["bulk", "vacancy"]
    assert figures["bulk"]["n_selected"] == 3 and figures["bulk"]["heldout_force_rmse"] is None
    assert figures["vacancy"]["heldout_force_rmse"] == 0.2
    assert figures["vacancy"]["error_to_uncertainty"] == 2.0
    assert figures["vacancy"]["overconfidence"] == 1.5
    assert figures["vacancy"]["novelty_heldout"] == 2.5


def test_the_label_budget_counts_every_systems_initial_frames_and_conditions():
    from almomd.planning import budget

    config = completed(lambda c: two_systems(c, exploration={"temperatures": [800]}))
    labels = budget.label_budget(config)
    held = config["heldout"]
    trajectories = held.get("trajectories_per_condition", 2)  # each equilibrates, then frames
    steps = trajectories * held["equilibration_steps"] + held["steps_between"] * (
        held["frames_per_condition"] - trajectories
    )
    assert labels["initial"] == 2 * config["initial_data"]["n_frames"]
    assert labels["reference_md"] == 3 * steps  # bulk at 600 and 900 K, the vacancy at 800 K


def test_production_threshold_comes_from_its_systems_heldout_frames(tmp_path):
    from almomd import layout
    from almomd.exploration import production

    u = {"bulk": [0.10, 0.12, 0.14], "vacancy": [0.5, 0.7]}
    table = heldout_table({name: (np.full(len(v), 0.05), v) for name, v in u.items()})
    path = layout.path(layout.HELDOUT_TABLE, tmp_path, iteration=0)
    path.parent.mkdir(parents=True)
    table.to_csv(path, index=False)
    for system, values in (("bulk", u["bulk"]), (None, u["bulk"] + u["vacancy"])):
        expected = np.mean(values) + 3.0 * np.std(values)
        found = production.uncertainty_threshold(tmp_path, 0, "u_force_max", 3.0, system)
        assert found == pytest.approx(expected)


def test_production_system_must_be_a_system():
    with pytest.raises(ConfigError, match="production.system: 'slab' is not a system"):
        completed(lambda c: (two_systems(c), c.setdefault("production", {}).update(system="slab")))


def test_labels_keep_their_system_and_a_given_system_is_kept():
    from almomd.data.frames import labeled_copy

    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    cell.info["al_system"] = "vacancy"
    label = labeled_copy(cell, -1.0, np.zeros((4, 3)), al_id="x")
    assert label.info["al_system"] == "vacancy"  # provenance survives labeling
    bare = labeled_copy(bulk("Cu", "fcc", a=3.6, cubic=True), -1.0, np.zeros((4, 3)))
    assert bare.info["al_system"] == UNASSIGNED
    systems.tag([label, bare], {"bulk": cell})  # one system: only untagged frames are its
    assert (label.info["al_system"], bare.info["al_system"]) == ("vacancy", "bulk")
