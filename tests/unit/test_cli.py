"""The ``almomd`` command refuses bad values with exit 2, naming the option and the fix,
and never answers a bad config with a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from almomd import cli, deploy


def almomd(*argv: str, cwd: Path | None = None) -> int:
    """Run ``almomd argv`` in ``cwd``; its exit status (argparse's SystemExit included)."""
    here = Path.cwd()
    os.chdir(cwd or here)
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        return int(exit_.code)
    finally:
        os.chdir(here)


@pytest.fixture
def campaign_dir(tmp_path):
    """A campaign directory as ``almomd init`` writes it (the demo config, the profiles)."""
    deploy.init_campaign(tmp_path / "campaign")
    return tmp_path / "campaign"


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["budget", "--cores", "0"], "--cores"),
        (["budget", "--cores", "-3"], "--cores"),
        (["budget", "--cores", "two"], "--cores"),
        (["budget", "--jobs", "0"], "--jobs"),
        (["budget", "--queue-wait", "-5"], "--queue-wait"),
        (["md", "--temperature", "-300"], "--temperature"),
        (["md", "--steps", "0"], "--steps"),
        (["md", "--interval", "-1"], "--interval"),
        (["md", "--iteration", "-1"], "--iteration"),
        (["md", "--sigmas", "-2"], "--sigmas"),
    ],
)
def test_a_bad_option_value_exits_2_naming_the_option_and_a_good_value(argv, option, capsys):
    assert almomd(*argv) == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and f"give e.g. {option} " in err


def test_an_unknown_profile_lists_the_campaigns_profiles(campaign_dir, capsys):
    assert almomd("budget", "--profile", "nope", "-d", campaign_dir) == 2
    err = capsys.readouterr().err
    assert "--profile nope: no profile of that name" in err and "slurm" in err


def test_md_of_an_iteration_that_does_not_exist_lists_those_that_do(campaign_dir, capsys):
    assert almomd("md", "--iteration", "99", "-d", campaign_dir) == 2
    assert "--iteration 99: no trained ensemble; iterations with one: none yet" in (
        capsys.readouterr().err
    )


def test_status_outside_a_campaign_exits_non_zero(tmp_path, capsys):
    assert almomd("status", "-d", tmp_path / "nonexistent") == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert almomd("status", "-d", tmp_path / "empty") == 2
    assert "is not a campaign directory" in capsys.readouterr().err


def test_status_of_a_campaign_not_yet_run(campaign_dir, capsys):
    assert almomd("status", "-d", campaign_dir) == 0
    assert "campaign: not started" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- system\n- labeler\n", "the configuration is a list, not a mapping of sections"),
        ("42\n", "the configuration is a number, not a mapping of sections"),
        ("- [system, {structure: x.xyz}]\n- [labeler, {name: emt}]\n", "is a list"),
        ("seed: 1\nseed: 2\n", "key 'seed' is given twice, at lines 1 and 2"),
        ("selection:\n  max_frames: 4\n  shift: 1\n  max_frames: 8\n", "'max_frames' is given"),
    ],
)
def test_validate_refuses_what_is_not_a_config_without_a_traceback(tmp_path, text, message, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert almomd("validate", path, "-d", tmp_path) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_range_error_names_the_limit_and_the_fix(campaign_dir, capsys):
    path = campaign_dir / "config" / "config.yaml"
    path.write_text(path.read_text().replace("max_frames: 8", "max_frames: -8"))
    assert almomd("validate", "-d", campaign_dir) == 1
    err = capsys.readouterr().err
    assert "selection.max_frames: -8 is below the minimum" in err and "set a value >=" in err


@pytest.mark.parametrize("command", ["status", "validate", "budget", "md"])
def test_every_command_refuses_a_directory_that_does_not_exist(command, tmp_path, capsys):
    assert almomd(command, "-d", tmp_path / "nonexistent") == 2
    assert "nonexistent: no such directory; give the campaign directory" in (
        capsys.readouterr().err
    )
