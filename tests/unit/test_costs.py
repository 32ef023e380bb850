"""The cost model: fits on hand-made benchmark files, units of planned and finished jobs."""

import pytest
from ase.build import bulk
from conftest import REPO, test_config_with

from almomd import layout
from almomd.data.frames import write_frames
from almomd.planning import costs, measured
from almomd.settings.schema import validate_config


def test_fit_recovers_startup_and_cost_per_unit():
    samples = [(100.0, 14.0 + 0.5 * 100), (300.0, 14.0 + 0.5 * 300), (200.0, 14.0 + 0.5 * 200)]
    cost = costs.fit(samples)
    assert (cost.startup, cost.per_unit, cost.n_measured) == pytest.approx((14.0, 0.5, 3))
    assert cost.seconds(1000) == pytest.approx(514.0)
    # one unit count: through the origin and the mean
    same = costs.fit([(50.0, 10.0), (50.0, 12.0)])
    assert (same.startup, same.per_unit) == pytest.approx((0.0, 11.0 / 50.0))
    # ... or, given a first guess's shape, that shape scaled through the mean:
    # the guess (10 + 0.2 u) says 20 s at 50 units, measured 11 s: x 0.55
    shaped = costs.fit([(50.0, 10.0), (50.0, 12.0)], shape=(10.0, 0.2))
    assert (shaped.startup, shaped.per_unit) == pytest.approx((5.5, 0.11))
    assert costs.fit([(50.0, 10.0), (60.0, 12.0)], shape=(10.0, 0.2)).per_unit == pytest.approx(
        0.2
    )  # two unit counts: the fit alone
    # a line that would start below zero (1 s at 10 units, 12 s at 20) takes the shape too
    steep = costs.fit([(10.0, 1.0), (20.0, 12.0)], shape=(2.0, 0.1))
    assert (steep.startup, steep.per_unit) == pytest.approx((2.0 * 6.5 / 3.5, 0.1 * 6.5 / 3.5))
    # the first iteration's training jobs (one unit count) keep the guess's start-up share
    startup, per_unit = costs.FIRST_GUESS["train_member"]
    first = costs.fit_all({"train_member": [(480.0, 40.0), (480.0, 44.0)]})["train_member"]
    scale = 42.0 / (startup + per_unit * 480.0)
    assert (first.startup, first.per_unit) == pytest.approx((startup * scale, per_unit * scale))
    assert first.seconds(480.0) == pytest.approx(42.0)
    # time that shrinks with the units: a constant, the mean
    flat = costs.fit([(10.0, 9.0), (20.0, 7.0)])
    assert (flat.startup, flat.per_unit) == pytest.approx((8.0, 0.0))
    guessed = costs.fit_all({"explore": [(1000.0, 5.0)]})
    assert guessed["explore"].source == "fitted to 1 jobs"
    assert guessed["train_member"].source == "first guess"
    assert guessed["train_member"].startup == costs.FIRST_GUESS["train_member"][0]


def write_benchmark(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{s}\t0:00:00\t1\t1\t1\t1\t0\t0\t1\t{s}\n" for s in seconds)
    path.write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n" + rows
    )


def frames(n, atoms=32):
    cell = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)[:atoms]
    return [cell.copy() for _ in range(n)]


@pytest.fixture
def measured_campaign(tmp_path):
    """A campaign directory with the files and benchmark files of finished jobs, made by hand."""
    config = validate_config(test_config_with(lambda c: None), REPO / ".test")
    root = tmp_path
    for name in ("cu.xyz",):
        (root / name).write_bytes((REPO / ".test" / name).read_bytes())

    def at(pattern, **wildcards):
        path = layout.path(pattern, root, **wildcards)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    write_frames(at(layout.TRAIN, iteration=0), frames(24))
    write_frames(at(layout.TRAIN, iteration=1), frames(28))
    for iteration, sizes in ((0, (19, 19)), (1, (22, 23))):
        for subset, size in enumerate(sizes):
            write_frames(at(layout.SUBSET, iteration=iteration, subset=subset), frames(size))
    walker = frames(13)
    for step, atoms in enumerate(walker):
        atoms.info["al_step"] = 5 * step  # 60 steps
    write_frames(at(layout.WALKER, iteration=0, walker=0), walker)
    write_frames(at(layout.LABELED, iteration=0, batch=0), frames(3))
    write_frames(at(layout.FAILED, iteration=0, batch=0), frames(1))
    bench = root / layout.BENCHMARKS
    # training: 14 s + 0.1 s per frame-epoch (6 epochs): 19 x 6 = 114, 22 x 6 = 132 units
    write_benchmark(bench / "iter_0/train_0_0.tsv", [14 + 11.4])
    write_benchmark(bench / "iter_1/train_0_0.tsv", [14 + 13.2])
    write_benchmark(bench / "iter_1/train_1_0.tsv", [14 + 13.8])  # 23 x 6 = 138
    write_benchmark(bench / "iter_0/explore_0.tsv", [30.0])
    write_benchmark(bench / "iter_0/label_0.tsv", [12.8])
    return config, root


def test_measured_jobs_count_their_units_from_the_files_they_made(measured_campaign):
    config, root = measured_campaign
    facts = costs.campaign(config, root)
    samples = measured.measurements(root, facts)
    found = sorted(samples["train_member"])
    assert [u for u, _ in found] == [114.0, 132.0, 138.0]
    assert [s for _, s in found] == pytest.approx([25.4, 27.2, 27.8])
    assert samples["explore"] == [(60 * 32 * 2, 30.0)]  # steps x atoms x members
    assert samples["label_batch"] == [(4 * 32, 12.8)]  # labeled and failed frames x atoms
    cost = costs.fit_all(samples)["train_member"]
    assert (cost.startup, cost.per_unit) == pytest.approx((14.0, 0.1))
    # before iteration 1: only iteration 0's training job
    early = measured.measurements(root, facts, before=1)["train_member"]
    assert early == [(114.0, pytest.approx(25.4))]


def test_planned_jobs_grow_with_the_training_set(measured_campaign):
    config, root = measured_campaign
    facts = costs.campaign(config, root)
    assert facts.n_train == {0: 24, 1: 28}
    assert facts.growth == 4.0  # measured: 24 -> 28
    # iteration 3 is planned from iteration 1's 28 frames and 4 more per iteration
    assert facts.train_size(3) == 36.0
    fraction = config["ensemble"]["subset_fraction"]
    epochs = config["training"]["max_epochs"]
    assert facts.units("train_member", {"iteration": "3"}) == pytest.approx(36 * fraction * epochs)
    steps = config["exploration"]["steps"]
    assert facts.units("explore", {"walker": "1"}) == steps * 32 * 2
    batches = config["labeler"]["n_batches"]
    assert facts.units("label_batch", {"batch": "0"}) == -(-4 // batches) * 32


def test_the_budget_expects_the_fitted_cost_and_marks_first_guesses(measured_campaign):
    from almomd.planning.budget import PlannedJob, expected

    config, root = measured_campaign
    member = {"iteration": "3", "subset": "0", "seed": "0"}
    jobs = [
        PlannedJob("train_member", member, {"runtime": "60"}),
        PlannedJob("compile_member", member, {"runtime": "30", "gpu": "1"}),
        PlannedJob("select_frames", {"iteration": "3"}),  # local: costs nothing
    ]
    result = expected(config, root, jobs, cores=1)
    units = 36 * config["ensemble"]["subset_fraction"] * config["training"]["max_epochs"]
    train_s = 14.0 + 0.1 * units
    compile_s = costs.FIRST_GUESS["compile_member"][0]
    assert result["job_hours"] == {"3": pytest.approx((train_s + compile_s) / 3600)}
    assert result["gpu_hours"] == pytest.approx(compile_s / 3600, abs=1e-6)
    assert result["sources"] == {
        "compile_member": "first guess",
        "train_member": "fitted to 3 jobs",
    }
    assert result["first_guess"] == ["compile_member"]
    # one core: the two steps run one after the other
    assert result["total_local_wall_hours"] == pytest.approx((train_s + compile_s) / 3600)


def test_a_benchmark_file_whose_job_files_are_gone_is_left_out(measured_campaign):
    config, root = measured_campaign
    layout.path(layout.SUBSET, root, iteration=1, subset=1).unlink()  # being redone
    facts = costs.campaign(config, root)
    units = sorted(u for u, _ in measured.measurements(root, facts)["train_member"])
    assert units == [114.0, 132.0]


def test_labeling_and_evaluation_rules_share_their_cost():
    measured = {"label_initial_batch": [(480.0, 72.0)], "label_batch": [(32.0, 16.0)]}
    fitted = costs.fit_all(measured)
    assert fitted["label_batch"] == fitted["label_initial_batch"]
    assert (fitted["label_batch"].startup, fitted["label_batch"].per_unit) == pytest.approx(
        (12.0, 0.125)
    )
    assert fitted["evaluate_heldout"].n_measured == 0


def test_a_pack_of_members_costs_one_startup_and_every_member_s_work(measured_campaign):
    """training.members_per_job: a pack's job is fitted with the members' jobs (a pack of one)."""
    from almomd.planning.budget import PlannedJob, expected

    config, root = measured_campaign
    config["training"]["members_per_job"] = 2  # .test: 2 subsets x 1 seed, one pack
    # the pack of iteration 1 trained both members: (22 + 23) frames x 6 epochs = 270 units
    write_benchmark(root / layout.BENCHMARKS / "iter_1/train_pack_0.tsv", [14 + 27.0])
    facts = costs.campaign(config, root)
    assert facts.packs == [[(0, 0), (1, 0)]]
    samples = measured.measurements(root, facts)
    assert samples["train_pack"] == [(270.0, 41.0)]
    fitted = costs.fit_all(samples)["train_pack"]
    assert (fitted.startup, fitted.per_unit, fitted.n_measured) == pytest.approx((14.0, 0.1, 4))
    member_units = 36 * config["ensemble"]["subset_fraction"] * config["training"]["max_epochs"]
    planned = PlannedJob("train_pack_0", {"iteration": "3"}, {"runtime": "120"}, members=2)
    assert facts.units(planned.rule, planned.wildcards) == pytest.approx(2 * member_units)
    result = expected(config, root, [planned], cores=2)
    assert result["job_hours"] == {"3": pytest.approx((14.0 + 0.1 * 2 * member_units) / 3600)}
    assert result["sources"] == {"train_pack": "fitted to 4 jobs"}


def test_benchmark_seconds_reads_every_repeat(tmp_path):
    path = tmp_path / "benchmarks" / "iter_0" / "explore_0.tsv"
    write_benchmark(path, [12.5, 13.25])
    assert measured.benchmark_seconds(path) == [12.5, 13.25]


def write_package(path, stored_bytes):
    """An archive in nequip-package's layout with one type (Cu) and ``stored_bytes`` of
    tensors: what the planning reads of a package."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pkg/model/package_metadata.txt", "atom_types:\n  0: Cu\n")
        archive.writestr("pkg/.data/0.storage", b"\0" * stored_bytes)


def test_a_pretrained_package_scales_the_members_work_planned_and_measured(measured_campaign):
    config, root = measured_campaign
    before = costs.campaign(config, root)
    write_package(root / "big.nequip.zip", 10 * costs.DEMO_MEMBER_BYTES)
    config["training"]["start_from"] = "big.nequip.zip"
    config["initial_data"].update(md_calculator="start_from", md_pool=2)
    facts = costs.campaign(config, root)
    assert facts.model_size == pytest.approx(10.0)
    member = {"iteration": "3"}
    # the members' jobs: 10x the units (fine-tuned members train max_epochs here)
    assert facts.units("train_member", member) == pytest.approx(
        10 * before.units("train_member", member)
    )
    assert facts.units("explore", {"walker": "0"}) == 10 * before.units("explore", {"walker": "0"})
    assert facts.units("label_batch", {"batch": "0"}) == before.units("label_batch", {"batch": "0"})
    # measured ones alike: the fitted cost per unit is 10x smaller, the seconds the same
    samples = measured.measurements(root, facts)
    assert sorted(u for u, _ in samples["train_member"]) == [1140.0, 1320.0, 1380.0]
    scaled = costs.fit_all(samples)["train_member"].seconds(facts.units("train_member", member))
    plain = costs.fit_all(measured.measurements(root, before))["train_member"]
    assert scaled == pytest.approx(plain.seconds(before.units("train_member", member)))
    # the initial MD with the package: snapshots x pool x steps between x atoms x size
    initial = config["initial_data"]
    steps = round(initial["md_fraction"] * initial["n_frames"]) * 2 * initial["md_steps_between"]
    assert facts.units("initial_candidates", {}) == pytest.approx(steps * 32 * 10)
    assert before.units("initial_candidates", {}) == 0.0  # EMT: no cost modelled
