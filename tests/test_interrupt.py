"""Ctrl-C (SIGINT) during `octobatch run`, a second Ctrl-C, and two runs of one manifest."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web
from test_kill_resume import (
    JOBS,
    Attempt,
    check_outputs,
    prompt_of,
    run_command,
    run_env,
    tasks_by_prompt,
    write_manifest,
)

from octobatch.simulator import Simulator, SimulatorThread
from octobatch.state import Status, journal_path_for, load_state, lock_path_for

SECRET_KEY = "sk-live-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4"


def in_flight_at_provider(manifest: Path) -> int:
    state = load_state(manifest)
    return sum(1 for e in state.jobs.values()
               if e.task_id and e.status in (Status.QUEUED, Status.RUNNING))


def test_ctrl_c_saves_state_says_how_to_resume_and_the_rerun_submits_nothing_twice(
    tmp_path: Path,
) -> None:
    manifest = write_manifest(tmp_path, JOBS)
    with SimulatorThread(latency=0.6, seed=7, api_key=SECRET_KEY) as sim:
        command = run_command(manifest, sim.base_url)
        first = Attempt.start(command, tmp_path, "first", run_env(SECRET_KEY))
        first.wait_for('"event": "submitted"')
        first.process.send_signal(signal.SIGINT)
        assert first.finish() == 130, first.output()

        stderr = first.stderr.read_text()
        running = in_flight_at_provider(manifest)
        assert running > 0
        assert f"{running} task{'s' if running != 1 else ''} still running at the provider" in stderr
        assert re.search(r"Resume with: octobatch run \S*night\.yaml --base-url http://127\.0\.0\.1:\d+ ",
                         stderr), stderr
        submitted_before = tasks_by_prompt(sim)

        second = Attempt.start(command, tmp_path, "second", run_env(SECRET_KEY))
        assert second.finish() == 0, second.output()
        state = load_state(manifest)
        check_outputs(manifest, state, sim)
        # Nothing was submitted twice: each prompt created exactly one task, and every task
        # created before Ctrl-C is the one the rerun finished.
        assert all(len(tasks) == 1 for tasks in tasks_by_prompt(sim).values()), tasks_by_prompt(sim)
        for prompt, tasks in submitted_before.items():
            job_id = "shot-" + prompt.split()[1]
            assert state.jobs[job_id].task_id == tasks[0]
        assert_key_nowhere(SECRET_KEY, tmp_path, [first, second])


def test_second_ctrl_c_exits_at_once_and_the_journal_holds_every_task_id(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, JOBS)
    # Tasks that never finish: the only way out of this run is a signal.
    with SimulatorThread(latency=60, seed=8, api_key=SECRET_KEY) as sim:
        attempt = Attempt.start(run_command(manifest, sim.base_url), tmp_path, "run",
                                run_env(SECRET_KEY))
        attempt.wait_for('"event": "submitted"')
        attempt.process.send_signal(signal.SIGINT)
        time.sleep(0.001)
        attempt.process.send_signal(signal.SIGINT)
        # 130 from octobatch itself, or death by SIGINT (a shell shows both as 130) when the
        # second signal lands after the first one's orderly exit has already finished.
        assert attempt.finish(timeout=10) in (130, -signal.SIGINT), attempt.output()
        assert "interrupted" in attempt.stderr.read_text()

        state = load_state(manifest)
        recorded = {e.task_id for e in state.jobs.values() if e.task_id}
        for prompt, tasks in tasks_by_prompt(sim).items():
            entry = state.jobs[f"shot-{prompt.split()[1]}"]
            # Every task the provider created is in the journal, unless its POST was still
            # waiting for the answer, which the state then shows as an open submission.
            assert set(tasks) <= recorded or entry.status in (Status.SUBMITTING, Status.UNCERTAIN), (
                prompt, tasks, entry)
        assert recorded
        # A second Ctrl-C leaves before compaction: the state may exist only in the journal.
        assert_key_nowhere(SECRET_KEY, tmp_path, [attempt], lockfile_written=False)


def test_a_second_run_of_the_same_manifest_is_refused(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, 4)
    with SimulatorThread(latency=60, seed=9, api_key=SECRET_KEY) as sim:
        command = run_command(manifest, sim.base_url)
        first = Attempt.start(command, tmp_path, "first", run_env(SECRET_KEY))
        try:
            first.wait_for('"event": "run_started"')
            second = Attempt.start(command, tmp_path, "second", run_env(SECRET_KEY))
            assert second.finish() != 0
            assert second.stderr.read_text() == (
                f"octobatch: another octobatch run is already using {manifest} "
                f"(pid {first.process.pid}); wait for it to finish or stop it\n"
            )
            assert second.stdout.read_text() == ""
        finally:
            first.process.send_signal(signal.SIGINT)
            assert first.finish() == 130
        created = sum(len(t) for t in tasks_by_prompt(sim).values())
        assert created <= 4  # the refused run sent nothing
        assert all(prompt_of(f"shot-{i}") in tasks_by_prompt(sim) for i in range(4))
        assert_key_nowhere(SECRET_KEY, tmp_path, [first, second])


@contextmanager
def simulator_answering_late(hold: float, created: threading.Event) -> Iterator[Simulator]:
    """A simulator that creates each task at once but holds the POST's answer back `hold` s.

    That is the window in which a Ctrl-C finds a paid task the run has not heard of yet.
    """

    @web.middleware
    async def late(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        response = await handler(request)
        if request.method == "POST":
            created.set()
            await asyncio.sleep(hold)
        return response

    sim = Simulator(latency=0.2, seed=10)
    sim.app.middlewares.append(late)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(10)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# SIGHUP is a closed terminal or a dropped SSH session: it must journal the answer as Ctrl-C does.
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["int", "term", "hup"])
def test_ctrl_c_while_a_submission_awaits_its_answer_records_the_task(
        tmp_path: Path, sig: signal.Signals) -> None:
    manifest = write_manifest(tmp_path, 1)
    created = threading.Event()
    with simulator_answering_late(0.5, created) as sim:
        command = run_command(manifest, sim.base_url)
        first = Attempt.start(command, tmp_path, "first", run_env())
        assert created.wait(30), first.output()
        first.process.send_signal(sig)  # the task exists; its answer is on the way
        assert first.finish() == 130, first.output()
        [task_id] = tasks_by_prompt(sim)[prompt_of("shot-0")]
        entry = load_state(manifest).jobs["shot-0"]
        assert (entry.task_id, entry.status) == (task_id, Status.QUEUED)
        assert "1 task still running at the provider" in first.stderr.read_text()

        second = Attempt.start(command, tmp_path, "second", run_env())
        assert second.finish() == 0, second.output()
        assert tasks_by_prompt(sim)[prompt_of("shot-0")] == [task_id]
        assert not load_state(manifest).jobs["shot-0"].possible_duplicate


def assert_key_nowhere(key: str, directory: Path, attempts: list[Attempt], *,
                       lockfile_written: bool = True) -> None:
    """The API key is in no file a run wrote (state, outputs, gallery) and in no output."""
    files = [p for p in directory.rglob("*") if p.is_file()]
    if lockfile_written:
        assert lock_path_for(directory / "night.yaml") in files
    assert journal_path_for(lock_path_for(directory / "night.yaml")) in files
    needle = key.encode()
    for path in files:
        assert needle not in path.read_bytes(), path
    for attempt in attempts:
        assert key not in attempt.output()
