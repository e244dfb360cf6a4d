"""The run engine end to end against the simulator: every model, resume rules, deadlines."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine_helpers import POLL, png_bytes, prompts_jobs, run_engine, submits, write_manifest

from octobatch.engine import Engine, EngineOptions
from octobatch.engine.submission import new_idempotency_key
from octobatch.manifest import Manifest, load_manifest
from octobatch.plan import Plan, make_plan, observe_outputs
from octobatch.progress import Completed, Event, Progressed, Submitted
from octobatch.providers import Providers
from octobatch.providers.base import DEFAULT_PROVIDER
from octobatch.providers.octopusx import OctopusX
from octobatch.simulator import DEMO_KEY, Simulator
from octobatch.state import LockEntry, StateStore, Status, load_state
from octobatch.state.files import LocalFiles
from octobatch.transport import Downloaded, Finish, Transport


def assert_files_match(sim: Simulator, manifest_path: Path) -> None:
    state = load_state(manifest_path)
    for job_id, entry in state.jobs.items():
        assert entry.status is Status.COMPLETED, (job_id, entry)
        assert entry.task_id is not None and entry.output is not None
        data = (manifest_path.parent / entry.output).read_bytes()
        assert data == sim.expected_video(entry.task_id), job_id
        assert entry.sha256 == hashlib.sha256(data).hexdigest() and entry.bytes == len(data)


def opened_with_plan(path: Path) -> tuple[Manifest, StateStore, Plan]:
    """The manifest at `path`, its state store (open: the caller closes it) and the plan."""
    manifest = load_manifest(path)
    store = StateStore.open(manifest.path)
    return manifest, store, make_plan(manifest.jobs, store.state,
                                      observe_outputs(store.lock_dir, store.state))


async def test_every_model_and_mode(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator()
    (tmp_path / "ref.png").write_bytes(png_bytes())
    omni = {"model": "omni-fast", "seconds": 8, "aspect_ratio": "16:9"}
    jobs: list[dict[str, Any]] = [
        {**omni, "id": "t2v", "prompt": "ocean waves"},
        {**omni, "id": "first", "prompt": "first frame", "first_image_url": "ref.png"},
        {**omni, "id": "first-last", "prompt": "first and last", "first_image_url": "ref.png",
         "last_image_url": "https://example.com/last.jpg"},
        {**omni, "id": "refs", "prompt": "references",
         "images": ["ref.png", "https://example.com/b.png"]},
        {"id": "v2v", "model": "omni-fast-v2v", "prompt": "edit this clip",
         "video": "https://example.com/clip.mp4"},
        {"id": "jimeng3", "model": "jimeng-video-3.0", "prompt": "猫咪在草地上追逐蝴蝶",
         "size": "1280x720", "input_reference": "ref.png", "seconds": 5},
        {"id": "jimeng2", "model": "jimeng-video-2.0", "prompt": "a walk in snow", "seconds": 10},
    ]
    path = write_manifest(tmp_path, jobs, defaults={})
    outcome = await run_engine(sim, path)
    assert outcome.result.ok and outcome.result.completed == len(jobs), outcome.named("failed")
    assert_files_match(sim, path)
    assert set(sim.tasks_created_per_prompt().values()) == {1}
    models = {r.model for r in submits(sim)}
    assert models == {"omni-fast", "omni-fast-v2v", "jimeng-video-3.0", "jimeng-video-2.0"}
    jimeng = next(t for t in sim.tasks.values() if t.model == "jimeng-video-3.0")
    assert jimeng.params["input_reference"].startswith("png")


async def test_rerun_after_completion_makes_no_request(simulator: Simulator,
                                                       tmp_path: Path) -> None:
    path = write_manifest(tmp_path, prompts_jobs(5))
    first = await run_engine(simulator, path)
    assert first.result.completed == 5
    before = len(simulator.requests)
    second = await run_engine(simulator, path)
    assert len(simulator.requests) == before
    assert second.result.ok and len(second.named("skipped")) == 5


async def test_deleted_video_is_downloaded_again_without_a_new_task(
    simulator: Simulator, tmp_path: Path
) -> None:
    path = write_manifest(tmp_path, prompts_jobs(3))
    await run_engine(simulator, path)
    (tmp_path / "out" / "clip-1.mp4").unlink()
    before = len(submits(simulator))
    again = await run_engine(simulator, path)
    assert again.result.ok and len(submits(simulator)) == before
    assert {e.job_id for e in again.named("downloaded")} == {"clip-1"}
    assert_files_match(simulator, path)


async def test_a_changed_video_is_never_downloaded_over(simulator: Simulator,
                                                       tmp_path: Path) -> None:
    path = write_manifest(tmp_path, prompts_jobs(3))
    await run_engine(simulator, path)
    edited = tmp_path / "out" / "clip-2.mp4"
    edited.write_bytes(b"corrupt")
    before = len(simulator.requests)
    again = await run_engine(simulator, path)
    assert len(simulator.requests) == before  # nothing submitted, nothing fetched
    assert edited.read_bytes() == b"corrupt"
    assert again.result.unfinished == 1 and not again.result.ok
    [unfinished] = again.named("unfinished")
    assert unfinished.job_id == "clip-2" and "has 7 bytes, not the" in unfinished.reason
    edited.unlink()  # the user moves it away: the rerun downloads the video again
    third = await run_engine(simulator, path)
    assert third.result.ok and {e.job_id for e in third.named("downloaded")} == {"clip-2"}
    assert_files_match(simulator, path)


async def test_interrupted_run_resumes_by_polling_not_resubmitting(
    make_simulator: Any, tmp_path: Path
) -> None:
    sim = await make_simulator(latency=1.0)  # still running when the run is interrupted
    path = write_manifest(tmp_path, prompts_jobs(4))
    manifest = load_manifest(path)
    store = StateStore.open(manifest.path)
    submitted = asyncio.Event()
    seen: set[str] = set()

    def emit(event: Event) -> None:
        if isinstance(event, Submitted):
            seen.add(event.job_id)
            if len(seen) == 4:
                submitted.set()

    plan = make_plan(manifest.jobs, store.state, observe_outputs(store.lock_dir, store.state))
    async with Transport(sim.base_url, DEMO_KEY) as transport:
        engine = Engine(store, Providers(transport), EngineOptions(
            output_dir=manifest.output_dir, poll_interval=POLL), emit)
        run = asyncio.create_task(engine.run(plan))
        await asyncio.wait_for(submitted.wait(), 5)
        run.cancel()  # what Ctrl-C does
        await asyncio.gather(run, return_exceptions=True)
    store.close()
    state = load_state(path)
    assert all(e.task_id and e.status in (Status.QUEUED, Status.RUNNING)
               for e in state.jobs.values())
    outcome = await run_engine(sim, path)
    assert outcome.result.ok
    assert len(submits(sim)) == 4 and set(sim.tasks_created_per_prompt().values()) == {1}
    assert_files_match(sim, path)


async def test_failed_jobs_are_resubmitted_only_with_retry_failed(
    simulator: Simulator, tmp_path: Path
) -> None:
    path = write_manifest(tmp_path, [{"id": "bad", "prompt": "doomed [fail]"},
                                     {"id": "good", "prompt": "fine"}])
    first = await run_engine(simulator, path)
    assert first.result.failed == 1 and first.result.completed == 1 and not first.result.ok
    assert first.state is not None
    error = first.state.jobs["bad"].error
    assert error is not None and error["code"] == "generation_failed"
    before = len(simulator.requests)
    plain = await run_engine(simulator, path)
    assert len(simulator.requests) == before and plain.result.failed == 1
    await run_engine(simulator, path, retry_failed=True)
    assert simulator.tasks_created_per_prompt() == {"doomed [fail]": 2, "fine": 1}


async def test_timeout_keeps_the_task_and_retry_checks_it_before_paying_again(
    simulator: Simulator, tmp_path: Path
) -> None:
    path = write_manifest(tmp_path, [{"id": "slow", "prompt": "forever [stuck]"}])
    first = await run_engine(simulator, path, timeout=0.1)
    assert first.state is not None
    entry = first.state.jobs["slow"]
    assert entry.status is Status.FAILED and entry.error is not None
    assert entry.error["code"] == "timeout" and entry.task_id
    again = await run_engine(simulator, path, timeout=0.1, retry_failed=True)
    assert again.state is not None and again.state.jobs["slow"].task_id == entry.task_id
    assert simulator.tasks_created_per_prompt() == {"forever [stuck]": 1}


async def test_orphans_are_kept_until_prune(simulator: Simulator, tmp_path: Path) -> None:
    path = write_manifest(tmp_path, prompts_jobs(2))
    await run_engine(simulator, path)
    write_manifest(tmp_path, prompts_jobs(1))
    kept = await run_engine(simulator, path)
    assert kept.state is not None and "clip-1" in kept.state.jobs
    pruned = await run_engine(simulator, path, prune=True)
    assert pruned.state is not None and set(pruned.state.jobs) == {"clip-0"}
    assert pruned.named("pruned")


async def test_concurrency_bounds_jobs_in_flight(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(latency=0.1)
    path = write_manifest(tmp_path, prompts_jobs(12))
    outcome = await run_engine(sim, path, concurrency=3)
    assert outcome.result.completed == 12
    assert sim.peak_in_flight <= 3


async def test_a_crash_during_submission_is_resubmitted_with_its_key_within_the_bound(
    simulator: Simulator, tmp_path: Path
) -> None:
    path = write_manifest(tmp_path, prompts_jobs(2))
    manifest = load_manifest(path)
    store = StateStore.open(manifest.path)
    for job, crashed_posts in zip(manifest.jobs, (0, 2)):
        # What a kill -9 during the POST leaves behind.
        store.put(job.id, LockEntry(spec_hash=job.spec_hash, model=job.model,
                                    spec=dict(job.canonical), status=Status.SUBMITTING,
                                    idempotency_key=f"key-{job.id}", attempts=crashed_posts))
    store.close()
    outcome = await run_engine(simulator, path)
    resumed, exhausted = outcome.state.jobs["clip-0"], outcome.state.jobs["clip-1"]
    assert [r.idempotency_key for r in submits(simulator)] == ["key-clip-0"]
    assert resumed.status is Status.COMPLETED and resumed.possible_duplicate
    assert resumed.attempts == 2  # the crashed POST and the one that answered
    assert exhausted.status is Status.FAILED and (exhausted.error or {})["code"] == "uncertain"
    assert outcome.result.possible_duplicates == ("clip-0", "clip-1")


class _SlowDisk(LocalFiles):
    """A journal on a slow disk: each append takes 0.1 s, then says which task ids it holds."""

    def __init__(self, manifest: Path, seen: list[str]) -> None:
        super().__init__(manifest)
        self.seen = seen

    def append(self, data: bytes) -> None:
        time.sleep(0.1)
        super().append(data)
        for line in data.splitlines():
            task_id = json.loads(line).get("set", {}).get("task_id")
            if task_id:
                self.seen.append(f"durable {task_id}")


async def test_a_fresh_task_is_polled_and_announced_only_once_its_id_is_on_disk(
        make_simulator: Any, tmp_path: Path) -> None:
    # The task id's fsync runs while the first poll interval passes; with a disk slower than
    # that interval the poll (and the `submitted` event) must still wait for it.
    sim = await make_simulator(latency=0.0)
    manifest = load_manifest(write_manifest(tmp_path, prompts_jobs(3)))
    order: list[str] = []
    store = StateStore.open(manifest.path, backend=_SlowDisk(manifest.path, order))

    def emit(event: Event) -> None:
        if isinstance(event, Submitted | Progressed | Completed):
            order.append(f"{type(event).__name__} {event.task_id}")

    plan = make_plan(manifest.jobs, store.state, observe_outputs(store.lock_dir, store.state))
    options = EngineOptions(output_dir=manifest.output_dir, concurrency=3, poll_interval=POLL)
    try:
        async with Transport(sim.base_url, DEMO_KEY, concurrency=3) as transport:
            result = await Engine(store, Providers(transport), options, emit).run(plan)
    finally:
        store.close()
    assert result.completed == 3
    for task_id in sim.tasks:
        mine = [entry for entry in order if entry.endswith(task_id)]
        assert mine[0] == f"durable {task_id}" and mine[1] == f"Submitted {task_id}", order


class _HeldPlacing(OctopusX):
    """The real provider, whose move of a finished video into place (run in the file
    threads with the last write) waits until the test lets it go."""

    def __init__(self, transport: Transport, placing: threading.Event,
                 go: threading.Event) -> None:
        super().__init__(transport)
        self.placing, self.go = placing, go

    async def download(self, url: str, dest: Path, then: Finish | None = None) -> Downloaded:
        assert then is not None  # the engine always hands over the move into place

        def held(got: Downloaded) -> None:
            self.placing.set()
            assert self.go.wait(30), "the test never let the move go"
            then(got)

        return await super().download(url, dest, held)


async def test_a_run_cancelled_while_a_video_moves_into_place_journals_it(
        make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(latency=0.0)
    path = write_manifest(tmp_path, prompts_jobs(1))
    manifest, store, plan = opened_with_plan(path)
    placing, go = threading.Event(), threading.Event()
    registry = {DEFAULT_PROVIDER: lambda transport: _HeldPlacing(transport, placing, go)}
    async with Transport(sim.base_url, DEMO_KEY) as transport:
        engine = Engine(store, Providers(transport, registry), EngineOptions(
            output_dir=manifest.output_dir, poll_interval=POLL))
        run = asyncio.create_task(engine.run(plan))
        assert await asyncio.to_thread(placing.wait, 30)
        run.cancel()  # Ctrl-C while the file thread is moving the video into place
        await asyncio.sleep(0.05)
        assert not run.done()  # the run waits for the move, however it ends
        go.set()
        await asyncio.gather(run, return_exceptions=True)
    store.close()
    # The video in place is recorded: the rerun neither downloads it again nor finds a file
    # octobatch did not write in its way.
    assert_files_match(sim, path)
    again = await run_engine(sim, path)
    assert again.result.ok and not again.named("downloaded") and len(submits(sim)) == 1


FORKED_KEYS = """
import os
from octobatch.engine.submission import new_idempotency_key
read, write = os.pipe()
if os.fork() == 0:  # the child: its next key goes to the parent
    os.write(write, new_idempotency_key().encode())
    os._exit(0)
os.close(write)
os.wait()
print(os.read(read, 64).decode(), new_idempotency_key())
"""


def test_idempotency_keys_are_unique_and_a_forked_child_draws_its_own() -> None:
    keys = {new_idempotency_key() for _ in range(10_000)}
    assert len(keys) == 10_000
    assert all(len(key) == 32 and int(key, 16) >= 0 for key in keys)
    # In a process of its own: forking this one, with its threads, is not safe.
    out = subprocess.run([sys.executable, "-c", FORKED_KEYS], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert len(out) == 2 and out[0] != out[1]  # the child did not repeat the parent's key


class _IgnoresThen(OctopusX):
    """A provider written before `then`: it downloads, and leaves the move to the engine."""

    async def download(self, url: str, dest: Path, then: Finish | None = None) -> Downloaded:
        return await super().download(url, dest)


async def test_a_provider_that_ignores_then_still_gets_its_videos_placed_and_recorded(
        make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(latency=0.0)
    path = write_manifest(tmp_path, prompts_jobs(3))
    manifest, store, plan = opened_with_plan(path)
    async with Transport(sim.base_url, DEMO_KEY) as transport:
        result = await Engine(store, Providers(transport, {DEFAULT_PROVIDER: _IgnoresThen}),
                              EngineOptions(output_dir=manifest.output_dir,
                                            poll_interval=POLL)).run(plan)
    store.close()
    assert result.completed == 3
    assert_files_match(sim, path)
    assert not [p.name for p in manifest.output_dir.iterdir() if p.name.endswith(".part")]
