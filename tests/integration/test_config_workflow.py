"""A broken config stops the real snakemake command before any job runs."""

import pytest
import yaml
from conftest import copy_test_config, load_test_config, snakemake, test_config_with

pytestmark = pytest.mark.workflow

BROKEN = {
    "unknown key": (lambda c: c["exploration"].update(temprature=[300]), "exploration.temprature"),
    "negative temperature": (
        lambda c: c["exploration"].update(temperatures=[300, -5]),
        "exploration.temperatures[1]",
    ),
    "missing structure": (
        lambda c: c["system"].update(structure="nowhere.xyz"),
        "system.structure",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_snakemake_stops_before_any_job(tmp_path, case):
    change, key = BROKEN[case]
    workdir = copy_test_config(tmp_path / "run")
    (workdir / "config.yaml").write_text(yaml.safe_dump(test_config_with(change)))
    result = snakemake(workdir, "--cores", "1", timeout=120)
    assert result.returncode != 0
    assert key in result.stdout + result.stderr
    assert not (workdir / "results").exists()
    assert not (workdir / "logs").exists()


def test_compile_option_adds_compiled_members_to_the_plan(tmp_path):
    workdir = copy_test_config(tmp_path / "run")
    config = load_test_config()
    config["training"]["compile"] = True
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--cores", "1", "--dry-run", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    plan = result.stdout + result.stderr
    assert "rule compile_member:" in plan
    assert "results/iter_0/models/member_1_0.nequip.pt2" in plan
    explore = plan[plan.index("rule explore:") :].split("rule ", 2)[1]
    assert ".nequip.pt2" in explore and ".nequip.zip" not in explore
