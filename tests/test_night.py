"""A real night, with tiny intervals: per-key task limits, long tasks, outages, deadlines,
interrupts during waits, and the mistakes that must stop a run before its first request."""

from __future__ import annotations

import io
import json
import math
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import POLL, prompts_jobs, run_engine, submits, write_manifest
from test_kill_resume import Attempt, run_command, run_env
from test_kill_resume import write_manifest as write_night_manifest

from octobatch.engine import EngineOptions
from octobatch.manifest import load_manifest
from octobatch.progress import (
    Downloaded,
    JsonLines,
    LimitLearned,
    PlainLines,
    Progressed,
    RunStarted,
    Submitted,
    Throttled,
    Waiting,
)
from octobatch.retry import RetryPolicy
from octobatch.session import RunSession
from octobatch.simulator import DEMO_KEY, Faults, SimulatorThread
from octobatch.state import Status, load_state

# Tiny delays, and a clean stretch longer than any test: the limit is held, not probed.
QUICK = RetryPolicy(base=0.005, cap=0.02, retry_after_cap=0.05, breaker_cooldown=0.05,
                    breaker_cooldown_cap=0.1, task_not_found_window=0.05)


def rejected(sim: Any) -> int:
    return sum(1 for r in submits(sim) if r.status == 429)


async def test_the_limit_is_learned_and_held(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(faults=Faults(concurrency_limit=2), latency=0.1)
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(10)), concurrency=6,
                               policy=QUICK)
    assert outcome.result.ok and outcome.result.learned_limit == 2
    assert sim.peak_in_flight == 2
    # The first wave meets the limit (up to 4 of the 6 refused); after that it is held.
    assert rejected(sim) <= 5, rejected(sim)
    assert [e.limit for e in outcome.named("limit_learned")][-1] == 2
    assert any(e.reason == "provider_slot" for e in outcome.named("waiting"))
    [finished] = outcome.named("run_finished")
    assert finished.learned_limit == 2
    assert not outcome.result.possible_duplicates


async def test_the_limit_is_probed_upward_after_a_clean_stretch(
    make_simulator: Any, tmp_path: Path
) -> None:
    sim = await make_simulator(faults=Faults(concurrency_limit=3), latency=0.15)
    policy = RetryPolicy(base=0.005, cap=0.02, slot_probe_after=0.0)  # probe whenever at it
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(6)), concurrency=4,
                               policy=policy)
    assert outcome.result.ok and sim.peak_in_flight == 3
    # Probed to 4, refused, learned 3 again: more than once, since every moment is "clean".
    assert [e.limit for e in outcome.named("limit_learned")].count(3) >= 2


async def test_patience_a_long_task_and_a_limit_of_one(make_simulator: Any,
                                                        tmp_path: Path) -> None:
    # The old engine gave up after 12 refusals; now the jobs wait for the one slot in turn.
    sim = await make_simulator(faults=Faults(concurrency_limit=1), latency=0.25)
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(3)), concurrency=3,
                               policy=QUICK)
    assert outcome.result.ok and outcome.result.completed == 3
    assert sim.peak_in_flight == 1 and not outcome.named("unfinished")
    assert rejected(sim) <= 3


async def test_retry_after_pauses_every_submission_of_the_key(make_simulator: Any,
                                                               tmp_path: Path) -> None:
    sim = await make_simulator(faults=Faults(submit_429_first=1, retry_after=0.2))
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(4)), concurrency=4,
                               policy=RetryPolicy(base=0.001, cap=0.01, retry_after_cap=1.0))
    assert outcome.result.ok
    posts = submits(sim)
    assert posts[0].status == 429
    throttled_at = posts[0].time
    later = [r.time - throttled_at for r in posts[1:] if r.status == 200]
    # Three of the four were on their way before the answer; whatever went after waited.
    assert sum(1 for gap in later if gap >= 0.18) >= 1, later


async def test_an_outage_is_outlived_and_nothing_is_lost(make_simulator: Any,
                                                          tmp_path: Path) -> None:
    sim = await make_simulator(faults=Faults(outage_at=0.15, outage_seconds=0.6), latency=0.2)
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(8)), concurrency=3,
                               policy=QUICK)
    assert outcome.result.ok and outcome.result.completed == 8, outcome.named("unfinished")
    assert sim.outages, "the outage happened"
    assert all(e.status is Status.COMPLETED and e.task_id for e in outcome.state.jobs.values())
    # A job whose task was being polled says so while it waits, and where its task is after.
    polled = 0
    for job_id in {e.job_id for e in outcome.named("waiting") if e.reason == "outage"}:
        names = [e.name for e in outcome.events if getattr(e, "job_id", None) == job_id]
        at = names.index("waiting")
        if "progress" not in names[:at]:
            continue  # it waited to be submitted
        polled += 1
        after = [n for n in names[at + 1:] if n not in ("retried", "waiting")]
        assert after and after[0] in ("progress", "completed"), names
    assert polled, [(e.name, getattr(e, "job_id", "")) for e in outcome.events]


async def test_the_run_deadline_leaves_waiting_jobs_unfinished_and_unflagged(
    make_simulator: Any, tmp_path: Path
) -> None:
    sim = await make_simulator(faults=Faults(concurrency_limit=1), latency=30)
    path = write_manifest(tmp_path, prompts_jobs(3))
    manifest = load_manifest(path)
    events: list[Any] = []
    options = EngineOptions(output_dir=manifest.output_dir, concurrency=3, poll_interval=POLL,
                            deadline=0.3, retry=QUICK)
    async with RunSession(manifest, sim.base_url, DEMO_KEY, options, events.append) as session:
        result = await session.run(session.plan())
    assert result.unfinished == 3 and result.running_at_provider == 1
    assert [e.name for e in events if e.name == "deadline_passed"] == ["deadline_passed"]
    state = load_state(path)
    assert sorted(e.status.value for e in state.jobs.values()) == ["pending", "pending", "queued"]
    assert not any(e.possible_duplicate for e in state.jobs.values())


async def test_task_not_exist_fails_a_task_only_when_it_persists(make_simulator: Any,
                                                                 tmp_path: Path) -> None:
    sim = await make_simulator()
    path = write_manifest(tmp_path, prompts_jobs(1))
    first = await run_engine(sim, path)
    entry = first.state.jobs["clip-0"]
    (tmp_path / "out" / "clip-0.mp4").unlink()  # the rerun must poll the task again
    sim.tasks.clear()  # and the provider has lost it
    second = await run_engine(sim, path, policy=QUICK)
    [failed] = second.named("failed")
    assert failed.code == "task_not_found"
    polls = [r for r in sim.requests if r.kind == "poll" and r.task_id == entry.task_id]
    assert len(polls) >= QUICK.task_not_found_polls + 1  # +1: the first run's
    assert polls[-1].time - polls[-QUICK.task_not_found_polls].time >= QUICK.task_not_found_window


async def test_a_refused_connection_names_the_url_and_stops_once(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Nowhere:
        base_url = f"http://127.0.0.1:{port}"

    outcome = await run_engine(Nowhere(), write_manifest(tmp_path, prompts_jobs(6)),  # type: ignore[arg-type]
                               concurrency=2, policy=QUICK)
    assert outcome.result.submissions_stopped == (
        f"connection refused to http://127.0.0.1:{port}; check --base-url "
        "(or OCTOBATCH_BASE_URL) and the network")
    assert len(outcome.named("submissions_stopped")) == 1
    assert outcome.result.unfinished == 6 and not outcome.result.possible_duplicates
    assert all(e.status is Status.PENDING for e in outcome.state.jobs.values())


def test_progress_says_what_the_run_waits_for() -> None:
    out = io.StringIO()
    listen = PlainLines(out, interval=0.0)
    listen(RunStarted(manifest="m.yaml", total=40, actions={"submit": 40}))
    for i in range(12):
        listen(Downloaded(job_id=f"d{i}", task_id="t", path="/x.mp4", bytes=1, sha256="s"))
    for i in range(4):
        listen(Submitted(job_id=f"r{i}", task_id="t", attempt=1, possible_duplicate=False))
        listen(Progressed(job_id=f"r{i}", task_id="t", status="running", progress=10))
    listen(LimitLearned(limit=4))
    for i in range(8):
        listen(Waiting(job_id=f"w{i}", reason="provider_slot"))
    listen(Waiting(job_id="x", reason="download", detail="connection refused to http://h"))
    assert out.getvalue().splitlines()[-1] == (
        "12/40 done; 4 running, 8 waiting for a provider slot (limit 4 learned), "
        "1 waiting on downloads (connection refused to http://h)")


def test_nan_and_infinity_never_reach_json() -> None:
    out = io.StringIO()
    JsonLines(out)(Throttled(job_id="j", operation="poll", delay=math.nan, retry_after=True))
    JsonLines(out)(Throttled(job_id="j", operation="poll", delay=math.inf, retry_after=True))
    assert [json.loads(line)["delay"] for line in out.getvalue().splitlines()] == [None, None]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=["int", "term", "hup", "kill"])
def test_a_signal_during_429_waits_flags_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    manifest = write_night_manifest(tmp_path, 4)
    # One slot, tasks that outlast the test: three jobs wait for the slot until the signal.
    with SimulatorThread(latency=60, seed=3, faults=Faults(concurrency_limit=1)) as sim:
        attempt = Attempt.start(run_command(manifest, sim.base_url), tmp_path, "run", run_env())
        # Signal once every job's answer is journaled (a kill -9 keeps only the journal): the
        # slot holder's task id before "submitted", each refused job's return to pending before
        # its wait for the slot. Any one line alone can come before another job's answer.
        assert attempt.wait_for('"event": "submitted"'), attempt.output()
        assert attempt.wait_for('"event": "throttled"'), attempt.output()
        assert attempt.wait_for('"reason": "provider_slot"', times=3), attempt.output()
        attempt.process.send_signal(sig)
        code = attempt.finish()
    assert code == (-signal.SIGKILL if sig is signal.SIGKILL else 130), attempt.output()
    state = load_state(manifest)
    statuses = sorted(e.status.value for e in state.jobs.values())
    assert statuses.count("queued") + statuses.count("running") == 1, statuses
    assert set(statuses) <= {"pending", "queued", "running"}, statuses
    assert not any(e.possible_duplicate for e in state.jobs.values())
    plan = subprocess.run([sys.executable, "-m", "octobatch", "plan", str(manifest), "--json"],
                          capture_output=True, text=True, env=run_env(), cwd=tmp_path, check=False)
    assert "duplicate" not in plan.stdout.lower(), plan.stdout


@pytest.mark.parametrize(("env", "flags", "says"), [
    ({"OCTOPUSX_API_KEY": DEMO_KEY}, ["--base-url", "127.0.0.1:8000"],
     "octobatch: --base-url '127.0.0.1:8000' is not an http:// or https:// URL with a host; "
     "write it like https://octopusx.ai or http://127.0.0.1:8000"),
    ({"OCTOPUSX_API_KEY": DEMO_KEY}, ["--base-url", "http://"],
     "octobatch: --base-url 'http://' is not an http:// or https:// URL with a host; "
     "write it like https://octopusx.ai or http://127.0.0.1:8000"),
    ({"OCTOPUSX_API_KEY": DEMO_KEY, "OCTOBATCH_BASE_URL": "ftp://x"}, [],
     "octobatch: OCTOBATCH_BASE_URL 'ftp://x' is not an http:// or https:// URL with a host; "
     "write it like https://octopusx.ai or http://127.0.0.1:8000"),
    ({"OCTOPUSX_API_KEY": "sk-abc\n"}, [],
     "octobatch: OCTOPUSX_API_KEY contains whitespace or control characters (a newline or "
     "space copied with it?); set it to the key alone"),
    ({"OCTOPUSX_API_KEY": ""}, [],
     "octobatch: set OCTOPUSX_API_KEY to your octopusx API key (or try `octobatch run "
     "--simulate` without one)"),
], ids=["no-scheme", "no-host", "env-ftp", "key-newline", "key-empty"])
def test_usage_errors_before_any_request(tmp_path: Path, env: dict[str, str], flags: list[str],
                                         says: str) -> None:
    manifest = write_night_manifest(tmp_path, 1)
    base = {k: v for k, v in run_env().items() if k != "OCTOPUSX_API_KEY"}
    done = subprocess.run([sys.executable, "-m", "octobatch", "run", str(manifest), *flags],
                          capture_output=True, text=True, env={**base, **env}, cwd=tmp_path,
                          check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == says
    assert "sk-abc" not in done.stderr
    assert not (tmp_path / "night.lock.journal").exists()
