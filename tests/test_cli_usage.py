"""What a user sees when the command line is wrong, bare, or asks for the version."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from octobatch import __version__
from octobatch.cli import main


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """argparse wraps usage to the terminal's width; pin it so the text is exact."""
    monkeypatch.setenv("COLUMNS", "80")


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    return err


def test_a_second_manifest_shows_the_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(["plan", "a.yaml", "b.yaml"], capsys) == (
        "usage: octobatch plan [-h] [--allow-outside-files] [--allow-outside-output]\n"
        "                      [--only GLOB] [--replace GLOB] [--replace-rejected]\n"
        "                      [--json] [--retry-failed] [--output-dir DIR]\n"
        "                      [--exit-code] [--check-key] [--base-url URL]\n"
        "                      MANIFEST\n"
        "octobatch plan: error: unrecognized arguments: b.yaml "
        "(plan takes one MANIFEST; call it once per manifest)\n")


def test_dry_run_suggests_plan(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["run", "demo.yaml", "--dry-run"], capsys)
    assert err.startswith("usage: octobatch run [-h]")
    assert err.endswith(
        "octobatch run: error: unrecognized arguments: --dry-run "
        "(to see what a run would do without doing it: octobatch plan demo.yaml)\n")


def test_a_job_after_status_points_at_show(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["status", "demo.yaml", "beach"], capsys)
    assert err.startswith("usage: octobatch status [-h]")
    assert err.endswith(
        "octobatch status: error: unrecognized arguments: beach "
        "(status takes one MANIFEST; for everything about one job: octobatch show MANIFEST JOB)\n")


def test_a_misspelt_flag_gets_the_closest_one(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["run", "demo.yaml", "--retry-faild"], capsys)
    assert err.endswith("unrecognized arguments: --retry-faild (did you mean --retry-failed?)\n")


def test_an_unknown_top_level_flag_shows_the_top_level_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert usage_error(["--bogus"], capsys) == (
        "usage: octobatch [-h] [-V] COMMAND ...\n"
        "octobatch: error: unrecognized arguments: --bogus\n")


def test_bare_octobatch_prints_the_help() -> None:
    done = subprocess.run([sys.executable, "-m", "octobatch"], capture_output=True, text=True,
                          check=False, env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: octobatch [-h] [-V] COMMAND ...\n\n"
                                  "Turn YAML manifests of video jobs into finished MP4 files.\n")
    for command in ("validate", "plan", "run", "status", "report", "simulate", "init",
                    "completion"):
        assert f"\n    {command} " in done.stdout


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_short_and_long_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([flag]) == 0
    assert capsys.readouterr().out == f"octobatch {__version__}\n"
