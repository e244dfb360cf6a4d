"""`octobatch run` as users call it: exit codes, output modes, resume, the key kept secret."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import prompts_jobs, write_manifest

from octobatch.cli import main
from octobatch.progress import (
    Failed,
    ProgressBar,
    Progressed,
    RunFinished,
    RunStarted,
    Skipped,
    Submitted,
)
from octobatch.simulator import DEMO_KEY, Simulator

FAST_FLAGS = ["--poll-interval", "0.02"]



def test_run_completes_then_rerun_has_nothing_to_do(cli_sim: Simulator, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, prompts_jobs(3))
    assert main(["run", str(path), *FAST_FLAGS]) == 0
    first = capsys.readouterr()
    assert "batch.yaml: 3 completed, 0 failed, 0 unfinished" in first.out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "clip-0.mp4", "clip-1.mp4", "clip-2.mp4", "index.html"]
    before = len(cli_sim.requests)
    assert main(["run", str(path), *FAST_FLAGS]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert len(cli_sim.requests) == before
    for written in [*tmp_path.glob("batch.lock.*"), tmp_path / "out" / "index.html"]:
        assert DEMO_KEY not in written.read_text(errors="replace")
    assert DEMO_KEY not in first.out + first.err


def test_json_events_are_one_object_per_line(cli_sim: Simulator, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, prompts_jobs(2))
    assert main(["run", str(path), "--json", *FAST_FLAGS]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "run_started" and names[-1] == "run_finished"
    downloaded = [e for e in events if e["event"] == "downloaded"]
    assert {e["job_id"] for e in downloaded} == {"clip-0", "clip-1"}
    assert all(e["task_id"] in cli_sim.tasks and e["bytes"] > 0 for e in downloaded)
    assert events[-1]["completed"] == 2


def test_failed_job_exits_1_with_plain_progress(cli_sim: Simulator, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, [{"id": "ok", "prompt": "fine"},
                                     {"id": "bad", "prompt": "doomed [fail]"}])
    assert main(["run", str(path), *FAST_FLAGS]) == 1
    out = capsys.readouterr().out
    assert "job 'bad' failed (generation_failed)" in out
    assert "1 completed, 1 failed, 0 unfinished" in out
    assert "/2 done" in out  # the non-terminal progress lines


def test_invalid_manifest_exits_2_before_any_request(cli_sim: Simulator, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, [{"id": "x", "prompt": "p", "model": "no-such-model"}])
    assert main(["run", str(path)]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert cli_sim.requests == []


def test_missing_key_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OCTOPUSX_API_KEY", raising=False)
    path = write_manifest(tmp_path, prompts_jobs(1))
    assert main(["run", str(path)]) == 2
    assert "OCTOPUSX_API_KEY" in capsys.readouterr().err


def test_simulate_needs_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OCTOPUSX_API_KEY", raising=False)
    monkeypatch.setenv("OCTOBATCH_SIMULATE_LATENCY", "0.05")
    path = write_manifest(tmp_path, prompts_jobs(2))
    assert main(["run", str(path), "--simulate", "--quiet", *FAST_FLAGS]) == 0
    assert capsys.readouterr().out == ""
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 2


def test_ctrl_c_saves_state_and_says_how_to_resume(simulator_thread: Any,
                                                   tmp_path: Path) -> None:
    sim = simulator_thread()
    path = write_manifest(tmp_path, [{"id": "slow", "prompt": "takes forever [stuck]"}])
    env = {**os.environ, "OCTOPUSX_API_KEY": DEMO_KEY, "OCTOBATCH_BASE_URL": sim.base_url}
    child = subprocess.Popen(
        [sys.executable, "-m", "octobatch", "run", str(path), "--json", *FAST_FLAGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    for line in child.stdout:  # wait until the task id is journaled and announced
        if json.loads(line)["event"] == "submitted":
            break
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=20)
    assert child.returncode == 130
    assert "1 task still running at the provider" in err
    assert f"Resume with: octobatch run {path}" in err
    lock = json.loads((tmp_path / "batch.lock.json").read_text())
    assert lock["jobs"]["slow"]["task_id"] in sim.tasks


def test_progress_bar_counts_jobs_by_state() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, mininterval=0)
    bar(RunStarted(manifest="m.yaml", total=3))
    bar(Skipped(job_id="a", reason="up to date"))
    bar(Submitted(job_id="b", task_id="t1", attempt=1, possible_duplicate=False))
    bar(Submitted(job_id="c", task_id="t2", attempt=1, possible_duplicate=False))
    bar(Progressed(job_id="b", task_id="t1", status="running", progress=40))
    bar(Failed(job_id="c", task_id="t2", code="generation_failed", message="no"))
    shown = stream.getvalue()
    assert "2/3" in shown and "1 running" in shown and "1 failed" in shown
    assert "job 'c' failed (generation_failed): no" in shown
    bar(RunFinished(manifest="m.yaml", completed=1, failed=1, unfinished=1,
                    running_at_provider=1))


def test_interrupted_simulated_run_resumes_with_the_printed_command(tmp_path: Path) -> None:
    """The demo's simulator lives only as long as the run; resuming must still not resubmit."""
    path = write_manifest(tmp_path, prompts_jobs(2))
    env = {**os.environ, "OCTOBATCH_SIMULATE_LATENCY": "30"}
    env.pop("OCTOPUSX_API_KEY", None)
    command = [sys.executable, "-m", "octobatch", "run", str(path), "--simulate", "--json",
               *FAST_FLAGS]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    assert child.stdout is not None
    submitted = 0
    for line in child.stdout:
        submitted += json.loads(line)["event"] == "submitted"
        if submitted == 2:
            break
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=20)
    assert child.returncode == 130, err
    assert "--simulate" in err.split("Resume with:")[1]
    task_ids = {job: entry["task_id"] for job, entry in
                json.loads((tmp_path / "batch.lock.json").read_text())["jobs"].items()}

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr
    events = [json.loads(line) for line in rerun.stdout.splitlines()]
    assert not [e for e in events if e["event"] == "submitted"]
    downloaded = {e["job_id"]: e["task_id"] for e in events if e["event"] == "downloaded"}
    assert downloaded == task_ids
