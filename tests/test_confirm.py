"""On a terminal, a run that would pay a real provider asks first; scripts are never asked."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine_helpers import prompts_jobs, write_manifest

from octobatch.confirm import should_ask
from octobatch.simulator import DEMO_KEY


def priced_manifest(tmp_path: Path) -> Path:
    path = write_manifest(tmp_path, prompts_jobs(2))
    doc = yaml.safe_load(path.read_text())
    doc["settings"] = {"currency": "USD", "prices": {"omni-fast": {"per_second": 0.05}}}
    path.write_text(yaml.safe_dump(doc))
    return path


def in_terminal(argv: list[str], cwd: Path, env: dict[str, str], answer: str | None,
                timeout: float = 30) -> tuple[int, str]:
    """Run octobatch on a real pty (stdin and stdout), typing `answer` at the question."""
    leader, follower = pty.openpty()
    fcntl.ioctl(leader, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 160, 0, 0))
    child = subprocess.Popen([sys.executable, "-m", "octobatch", *argv], cwd=cwd, env=env,
                             stdin=follower, stdout=follower, stderr=follower,
                             start_new_session=True)
    os.close(follower)
    seen, answered = b"", answer is None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not answered and b"Submit? [y/N] " in seen:
                os.write(leader, answer.encode() + b"\n")
                answered = True
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif child.poll() is not None:
                break
        return child.wait(timeout=10), seen.decode(errors="replace")
    finally:
        if child.poll() is None:
            child.kill()
        os.close(leader)


@pytest.fixture
def server(simulator_thread: Any) -> Any:
    return simulator_thread()


@pytest.fixture
def env(server: Any) -> dict[str, str]:
    return {**os.environ, "OCTOPUSX_API_KEY": DEMO_KEY, "OCTOBATCH_BASE_URL": server.base_url}


def test_no_means_nothing_is_submitted(env: dict[str, str], server: Any,
                                       tmp_path: Path) -> None:
    path = priced_manifest(tmp_path)
    code, shown = in_terminal(["run", path.name, "--poll-interval", "0.02"], tmp_path, env, "n")
    base_url = env["OCTOBATCH_BASE_URL"]
    assert (f"batch.yaml: 2 jobs to submit to {base_url} (omni-fast 16s); cost 0.80 USD; "
            "already spent 0.00 USD. Submit? [y/N] n\r\n") in shown
    assert "octobatch: not confirmed; nothing was submitted (add --yes to skip the question, " \
           "e.g. in scripts)" in shown
    assert code == 1
    assert server.tasks == {}  # not one POST


def test_yes_submits(env: dict[str, str], tmp_path: Path) -> None:
    path = priced_manifest(tmp_path)
    code, shown = in_terminal(["run", path.name, "--poll-interval", "0.02", "--max-cost", "5"],
                              tmp_path, env, "y")
    assert code == 0, shown
    assert "already spent 0.00 USD, cap 5.00 USD. Submit? [y/N] y" in shown
    assert "batch.yaml: 2 completed, 0 failed, 0 unfinished" in shown


def test_the_yes_flag_skips_the_question(env: dict[str, str], tmp_path: Path) -> None:
    path = priced_manifest(tmp_path)
    code, shown = in_terminal(["run", path.name, "--poll-interval", "0.02", "-y"], tmp_path,
                              env, None)
    assert code == 0 and "Submit?" not in shown


def test_only_a_real_run_on_a_terminal_asks() -> None:
    leader, follower = pty.openpty()
    with open(follower, encoding="utf-8") as tty_in, \
            open(os.dup(follower), "w", encoding="utf-8") as tty_out:
        assert should_ask(assume_yes=False, simulate=False, stdin=tty_in, out=tty_out)
        assert not should_ask(assume_yes=False, simulate=True, stdin=tty_in, out=tty_out)
        assert not should_ask(assume_yes=True, simulate=False, stdin=tty_in, out=tty_out)
        assert not should_ask(assume_yes=False, simulate=False, stdin=io.StringIO(),
                              out=tty_out)
        assert not should_ask(assume_yes=False, simulate=False, stdin=tty_in,
                              out=io.StringIO())
    os.close(leader)


def test_without_a_terminal_it_never_asks(env: dict[str, str], tmp_path: Path) -> None:
    path = priced_manifest(tmp_path)
    done = subprocess.run([sys.executable, "-m", "octobatch", "run", path.name,
                           "--poll-interval", "0.02"], cwd=tmp_path, env=env, input="",
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Submit?" not in done.stdout + done.stderr
