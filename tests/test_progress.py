"""The listeners as a user sees them: counts from the first line, a bar that lets go on Ctrl-C."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from engine_helpers import prompts_jobs, write_manifest

from octobatch.progress import (
    Downloaded,
    PlainLines,
    ProgressBar,
    RunFinished,
    RunStarted,
    Skipped,
    Submitted,
    Tally,
)

RESUMED = RunStarted(manifest="m.yaml", total=21, actions={"skip": 8, "submit": 13})


def test_a_resumed_run_counts_the_completed_jobs_from_its_first_line() -> None:
    stream = io.StringIO()
    plain = PlainLines(stream, interval=3600, clock=lambda: 0.0)
    plain(RESUMED)
    for i in range(8):
        plain(Skipped(job_id=f"done-{i}", reason="up to date"))
    assert stream.getvalue() == "8/21 done\n"
    assert plain.tally.finished == 8


def test_the_bar_is_drawn_at_the_completed_count_and_never_counts_them_twice() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, mininterval=3600)  # only the first draw and close() show
    bar(RESUMED)
    assert " 8/21 " in stream.getvalue()
    for i in range(8):
        bar(Skipped(job_id=f"done-{i}", reason="up to date"))
    for i in range(13):
        bar(Submitted(job_id=f"new-{i}", task_id=f"t{i}", attempt=1, possible_duplicate=False))
        bar(Downloaded(job_id=f"new-{i}", task_id=f"t{i}", path=f"/o/new-{i}.mp4", bytes=1,
                       sha256="0" * 64))
    bar(RunFinished(manifest="m.yaml", completed=21, failed=0, unfinished=0,
                    running_at_provider=0))
    last = stream.getvalue().rsplit("\r", 1)[-1]
    assert " 21/21 " in last and "100%" in last


def test_a_job_completed_during_the_run_counts_once() -> None:
    tally = Tally()
    tally.feed(RunStarted(manifest="m.yaml", total=2, actions={"skip": 1, "submit": 1}))
    tally.feed(Skipped(job_id="a", reason="up to date"))
    tally.feed(Downloaded(job_id="b", task_id="t", path="/o/b.mp4", bytes=1, sha256="0" * 64))
    assert (tally.count("done"), tally.finished) == (2, 2)


def _read_until(fd: int, pattern: str, timeout: float) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not re.search(pattern, seen.decode(errors="replace")):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def test_after_ctrl_c_the_bar_is_not_redrawn_below_the_message(tmp_path: Path) -> None:
    """A real run on a real terminal (a pty), interrupted while its tasks are running."""
    path = write_manifest(tmp_path, prompts_jobs(2))
    env = {**os.environ, "OCTOBATCH_SIMULATE_LATENCY": "30"}
    main_fd, child_fd = pty.openpty()
    # A terminal of 30 rows x 100 columns: tqdm draws nothing on a terminal of width 0.
    fcntl.ioctl(main_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    child = subprocess.Popen(
        [sys.executable, "-m", "octobatch", "run", str(path), "--simulate"],
        stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env, cwd=tmp_path,
        start_new_session=True)
    os.close(child_fd)
    try:
        before = _read_until(main_fd, r"2 running|queued", timeout=20)
        assert "0/2" in before
        child.send_signal(signal.SIGINT)
        after = _read_until(main_fd, r"Resume with: .*--simulate\s*$", timeout=20)
        assert child.wait(timeout=20) == 130
        after += _read_until(main_fd, r"$^", timeout=0.3)  # anything written while exiting
    finally:
        if child.poll() is None:
            child.kill()
        os.close(main_fd)
    message_at = after.index("octobatch: interrupted; state saved.")
    tail = after[message_at:]
    assert "/2" not in tail and "\r" not in tail.rstrip("\r\n"), repr(tail)
    assert "0/2" in after[:message_at]  # the bar's last state is drawn once, above it,
    assert after[:message_at].endswith("\r\n")  # and the message starts on a line of its own


def test_every_json_event_carries_an_iso_utc_timestamp() -> None:
    from datetime import datetime, timedelta, timezone

    from octobatch.progress import JsonLines

    stream = io.StringIO()
    at = datetime(2026, 12, 1, 23, 15, 3, 120000, tzinfo=timezone(timedelta(hours=1)))
    JsonLines(stream, clock=lambda: at)(Skipped(job_id="a", reason="up to date"))
    assert stream.getvalue() == ('{"event": "skipped", "job_id": "a", "reason": "up to date", '
                                 '"ts": "2026-12-01T22:15:03.120Z"}\n')
