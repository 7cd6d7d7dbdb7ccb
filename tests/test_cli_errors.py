"""The CLI-wide error handler: every library error is one line, `error: ...`, and exit code 2.

--debug (or TAILORGEN_DEBUG=1) shows the traceback instead; a bug is one line with exit code 1;
Ctrl-C is `error: interrupted` with 130. Each command's limits are stated in its --help.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from tailorgen.cli import CommandExit, main


def _run(*args, env=None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


def _one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_a_library_error_is_one_line_and_exit_2(tmp_path):
    line = _one_error_line(_run("data", "stats", tmp_path))
    assert "is not a tailorgen dataset" in line
    result = _run("data", "stats", tmp_path)
    assert isinstance(result.exception, CommandExit) and "not a tailorgen dataset" in str(result.exception)


def test_debug_and_the_environment_show_the_traceback(tmp_path):
    for result in (
        _run("--debug", "data", "stats", tmp_path),
        _run("data", "stats", tmp_path, env={"TAILORGEN_DEBUG": "1"}),
    ):
        assert isinstance(result.exception, FileNotFoundError) and "error:" not in result.output
    assert "--debug" in _run("--help").output


def test_a_bug_is_one_line_naming_it_with_exit_1(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("tailorgen.data.stats.dataset_stats", broken)
    line = _one_error_line(_run("data", "stats", tmp_path), code=1)
    assert "unexpected ZeroDivisionError: division by zero" in line and "--debug" in line


def test_ctrl_c_is_one_line_with_exit_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tailorgen.data.stats.dataset_stats", interrupted)
    assert _one_error_line(_run("data", "stats", tmp_path), code=130) == "error: interrupted"


def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "from tailorgen.cli import main; main()", "data", "stats", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line == f"error: {tmp_path} is not a tailorgen dataset (no manifest.json); " + (
        "create one with `tailorgen world build` or `tailorgen data import`"
    )


def test_world_utility_names_unknown_users_items_and_values(small_shop):
    line = _one_error_line(_run("world", "utility", small_shop, "--user", "nobody", "--attr", "colour=red"))
    assert "unknown user 'nobody'; known users include 'u" in line
    line = _one_error_line(_run("world", "utility", small_shop, "--user", "u00", "--item", "nope"))
    assert "unknown item 'nope'" in line
    bad = _run("world", "utility", small_shop, "--user", "u00", "--attr", "colour=plaid")
    assert bad.exit_code == 2 and "unknown colour 'plaid'; known: red" in bad.output
    ok = _run("world", "utility", small_shop, "--user", "u00", "--attr", "colour=red")
    assert ok.exit_code == 0, ok.output


def test_world_build_options_are_checked_and_their_limits_stated(tmp_path):
    for option, value in [("--mean-history", "-1"), ("--items", "5"), ("--image-size", "100000"), ("--seed", "-1")]:
        r = _run("world", "build", "--out", tmp_path / "shop", option, value)
        assert r.exit_code == 2 and f"Invalid value for '{option}'" in r.output
    assert not (tmp_path / "shop").exists()
    help_text = " ".join(_run("world", "build", "--help").output.split())
    assert all(s in help_text for s in ("20 to 1,000,000", "6 to 200", "8 to 256"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_a_device_this_machine_lacks_is_a_usage_error(small_shop):
    for device, message in [("cuda", "has no CUDA GPU"), ("gpu9", "is not a device")]:
        r = _run("encode", small_shop, "--modality", "text", "--device", device)
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_judge_limit_must_be_positive(small_shop):
    r = _run("judge", small_shop, "--limit", "0")
    assert r.exit_code == 2 and "0 is not in the range x>=1" in r.output


def test_fetch_images_states_its_limits():
    help_text = " ".join(_run("data", "fetch-images", "--help").output.split())
    assert "--deadline" in help_text and "every attempt and wait included" in help_text and "(1 to 64)" in help_text
