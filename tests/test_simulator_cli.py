"""`octobatch simulate` as a user runs it: a real process, a pasted curl, then Ctrl-C."""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from octobatch.simulator import DEMO_KEY
from octobatch.simulator.options import add_arguments


@contextmanager
def serving(*flags: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """Start `octobatch simulate --port 0 ...`; yields the process and its banner lines."""
    process = subprocess.Popen(
        [sys.executable, "-m", "octobatch", "simulate", "--port", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner: list[str] = []
        assert process.stdout is not None
        while not banner or banner[-1] != "Press Ctrl-C to stop.":
            line = process.stdout.readline()
            assert line, f"simulate exited early: {process.communicate(timeout=10)}"
            banner.append(line.rstrip("\n"))
        yield process, banner
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def pasted_curl(banner: list[str]) -> str:
    """The banner's curl example, continuation lines joined as a shell would."""
    start = next(i for i, line in enumerate(banner) if line.strip().startswith("curl "))
    lines = []
    for line in banner[start:]:
        lines.append(line.strip().removesuffix("\\").strip())
        if not line.endswith("\\"):
            break
    return " ".join(lines)


def test_banner_example_works_and_ctrl_c_exits_cleanly() -> None:
    with serving("--latency", "0", "--submit-429-first", "1", "--seed", "3") as (process, banner):
        assert banner[0].startswith("octobatch simulator listening on http://127.0.0.1:")
        base_url = banner[0].rsplit(" ", 1)[1]
        assert f"API key (demo): {DEMO_KEY}" in banner
        assert "faults: submit_429_first=1" in banner
        assert any(f"octobatch run manifests/example.yaml --base-url {base_url}" in line
                   for line in banner)
        command = pasted_curl(banner) + " -sS -i"
        first = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30,
                               check=True).stdout
        assert first.startswith("HTTP/1.1 429") and "Retry-After: 1" in first
        second = subprocess.run(command, shell=True, capture_output=True, text=True,
                                timeout=30, check=True).stdout
        assert second.startswith("HTTP/1.1 200")
        created = json.loads(second.split("\n\n", 1)[1])  # text mode turned CRLF into LF
        assert created["status"] == "queued" and created["model"] == "omni-fast"

        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.strip() == "simulator stopped"
    # Each request is logged on stderr, with the fault it met; the key never is.
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert re.fullmatch(r"\d\d:\d\d:\d\d POST /v1/videos -> 429 \(fault: 429\)", lines[0])
    assert re.fullmatch(r"\d\d:\d\d:\d\d POST /v1/videos -> 200 task video_\w+", lines[1])
    assert created["id"] in lines[1] and DEMO_KEY not in err


def test_quiet_logs_nothing() -> None:
    with serving("--quiet") as (process, banner):
        base_url = banner[0].rsplit(" ", 1)[1]
        subprocess.run(["curl", "-sS", f"{base_url}/api/status"], capture_output=True,
                       timeout=30, check=True)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and err == ""


def test_sigterm_also_stops_cleanly() -> None:
    with serving() as (process, _):
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and err == ""


@pytest.mark.parametrize(("flags", "message"), [
    (["--submit-429", "1.5"], "must be a probability from 0 to 1"),
    (["--poll-drop-first", "-1"], "must be 0 or more"),
    (["--url-location", "body"], "invalid choice"),
    (["--submit-429", "0.6", "--submit-drop", "0.6"],
     "the submit fault probabilities add up to more than 1"),
    (["--outage-at", "3"], "outage_at and outage_every need outage_seconds"),
])
def test_bad_fault_flags_exit_2_with_a_message(flags: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "octobatch", "simulate", "--port", "0", *flags],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_bad_value_prints_one_error_line_under_a_short_usage_line() -> None:
    done = subprocess.run([sys.executable, "-m", "octobatch", "simulate", "--fail-rate", "2"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "usage: octobatch simulate [--host H] [--port P] [--latency S] [--quiet] "
        "[FAULT OPTIONS ...]",
        "octobatch simulate: error: argument --fail-rate: must be a probability from 0 to 1",
    ]


def test_help_says_a_task_is_created_only_for_submit_faults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    noted = sorted(action.option_strings[0] for action in parser._actions
                   if action.help and "still created" in action.help)
    assert noted == ["--submit-502", "--submit-502-first", "--submit-drop",
                     "--submit-drop-first"]


def test_busy_port_exits_2_with_a_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "octobatch", "simulate", "--port", str(port)],
            capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr


def test_docs_describe_every_simulate_flag() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    doc = (Path(__file__).resolve().parent.parent / "docs" / "simulator.md").read_text("utf-8")
    flags = [flag for action in parser._actions for flag in action.option_strings
             if flag.startswith("--") and flag != "--help"]
    assert len(flags) > 50
    # Whole flags only: `--submit-429-bare` must not count as documenting `--submit-429`.
    assert [flag for flag in flags if not re.search(f"`{re.escape(flag)}(?![\\w-])", doc)] == []
