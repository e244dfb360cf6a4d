"""`takes: N`: the plan counts the missing takes, the engine submits each one, against the
simulator on loopback (the real engine, real files, a real CLI)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine_helpers import FAST, OMNI_DEFAULTS, POLL, run_engine, submits, write_manifest

from octobatch.download import DownloadLimits
from octobatch.engine import EngineOptions, RunResult
from octobatch.jobs import JobSpec, Position
from octobatch.manifest import load_manifest
from octobatch.plan import Action, make_plan
from octobatch.progress import Event, NotSubmitted
from octobatch.session import RunSession
from octobatch.simulator import DEMO_KEY, Faults, Simulator
from octobatch.state import LockEntry, LockState, Status, Take, load_state
from octobatch.takes import keep_earlier_takes


def set_takes(path: Path, job_id: str, takes: int) -> None:
    doc = yaml.safe_load(path.read_text())
    for job in doc["jobs"]:
        if job["id"] == job_id:
            job["takes"] = takes
    path.write_text(yaml.safe_dump(doc))


def spec(takes: int) -> JobSpec:
    fields = {"prompt": "a cat", "seconds": 8}
    return JobSpec("cat", "omni-fast", fields, (), "h1", Position("m.yaml", 1, 1),
                   {"model": "omni-fast", **fields}, takes=takes)


def completed(takes: int, spec_hash: str = "h1") -> LockEntry:
    history = tuple(Take(n, f"t{n}", f"out/cat.take{n}.mp4", "s" * 64, 10, spec_hash, "2026")
                    for n in range(1, takes + 1))
    last = history[-1]
    history = (*history[:-1], Take(last.take, last.task_id, "out/cat.mp4", last.sha256, 10,
                                   spec_hash, "2026"))
    return LockEntry(spec_hash=spec_hash, model="omni-fast", status=Status.COMPLETED,
                     task_id=last.task_id, output="out/cat.mp4", sha256=last.sha256, bytes=10,
                     takes=history)


def plan_of(job: JobSpec, entry: LockEntry | None, on_disk: int | None = 10) -> Any:
    state = LockState("m.yaml", {"cat": entry} if entry else {})
    plan = make_plan([job], state, {"cat": on_disk})
    return plan, plan.steps[0]


def test_a_new_job_submits_every_take_and_the_totals_count_them() -> None:
    plan, step = plan_of(spec(3), None)
    assert (step.action, step.takes) == (Action.SUBMIT, 3)
    assert step.reason == "new job; submit 3 takes (0 of 3 done)"
    assert plan.seconds_by_model() == {"omni-fast": 24}
    assert (plan.costly(), plan.submissions()) == (1, 3)


def test_raising_takes_submits_only_the_missing_ones_and_lowering_submits_nothing() -> None:
    _, step = plan_of(spec(3), completed(1))
    assert (step.action, step.takes) == (Action.SUBMIT, 2)
    assert step.reason == "more takes wanted; submit 2 more takes (1 of 3 done)"
    _, step = plan_of(spec(3), completed(3))
    assert (step.action, step.takes, step.reason) == (Action.SKIP, 0, "up to date")
    _, step = plan_of(spec(2), completed(3))
    assert (step.action, step.takes) == (Action.SKIP, 0)


def test_takes_of_an_earlier_spec_do_not_count() -> None:
    plan, step = plan_of(spec(2), completed(2, spec_hash="old"))
    assert (step.action, step.takes) == (Action.REGENERATE, 2)
    assert plan.seconds_by_model() == {"omni-fast": 16}


def test_a_polled_take_counts_and_the_rest_follow_it() -> None:
    entry = LockEntry(spec_hash="h1", model="omni-fast", status=Status.RUNNING, task_id="t2",
                      takes=completed(1).takes)
    _, step = plan_of(spec(3), entry)
    assert (step.action, step.takes) == (Action.POLL, 1)
    assert step.reason == ("running at the provider (task t2); then submit 1 more take "
                           "(1 of 3 done)")
    _, missing_file = plan_of(spec(2), completed(1), on_disk=None)
    assert (missing_file.action, missing_file.takes) == (Action.DOWNLOAD, 1)


async def test_three_takes_are_three_submissions_files_and_lockfile_takes(
    simulator: Simulator, tmp_path: Path
) -> None:
    path = write_manifest(tmp_path, [{"id": "cat", "prompt": "a cat", "takes": 3},
                                     {"id": "dog", "prompt": "a dog"}])
    outcome = await run_engine(simulator, path, concurrency=2)
    assert outcome.result.ok and outcome.result.completed == 2
    cat_posts = [r for r in submits(simulator) if r.prompt == "a cat"]
    assert len(cat_posts) == 3 and len({r.idempotency_key for r in cat_posts}) == 3
    entry = outcome.state.jobs["cat"]
    assert [(t.take, t.output) for t in entry.takes] == [
        (1, "out/cat.take1.mp4"), (2, "out/cat.take2.mp4"), (3, "out/cat.mp4")]
    assert len({t.task_id for t in entry.takes}) == 3
    assert {t.spec_hash for t in entry.takes} == {entry.spec_hash}
    for take in entry.takes:
        data = (tmp_path / take.output).read_bytes()
        assert data == simulator.expected_video(take.task_id)
        assert (take.sha256, take.bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (entry.task_id, entry.output) == (entry.takes[2].task_id, "out/cat.mp4")
    assert len(outcome.state.jobs["dog"].takes) == 1

    again = await run_engine(simulator, path)  # done: nothing more is submitted
    assert again.result.ok and len(submits(simulator)) == 4
    set_takes(path, "cat", 4)
    raised = await run_engine(simulator, path)
    assert len(submits(simulator)) == 5 and len(raised.state.jobs["cat"].takes) == 4
    set_takes(path, "cat", 2)
    lowered = await run_engine(simulator, path)
    assert len(submits(simulator)) == 5 and len(lowered.state.jobs["cat"].takes) == 4
    assert sorted(p.name for p in (tmp_path / "out").glob("cat*.mp4")) == [
        "cat.mp4", "cat.take1.mp4", "cat.take2.mp4", "cat.take3.mp4"]


async def test_a_takes_possible_duplicate_is_kept_when_the_next_take_starts(
        make_simulator: Any, tmp_path: Path) -> None:
    # Take 1's first POST got a 500 after it was sent: it may have been billed twice. Take 2
    # goes out cleanly; the flag stays on take 1, in the lockfile and the gallery.
    sim = await make_simulator(faults=Faults(submit_500_first=1))
    path = write_manifest(tmp_path, [{"id": "cat", "prompt": "a cat"}])
    first = await run_engine(sim, path)
    assert first.state.jobs["cat"].possible_duplicate
    set_takes(path, "cat", 2)
    second = await run_engine(sim, path)
    entry = second.state.jobs["cat"]
    assert second.result.ok and not entry.possible_duplicate  # take 2's submission was clean
    assert [t.possible_duplicate for t in entry.takes] == [True, False]
    recorded = json.loads((tmp_path / "batch.lock.json").read_text())["jobs"]["cat"]["takes"]
    assert recorded[0]["possible_duplicate"] is True and "possible_duplicate" not in recorded[1]
    page = (tmp_path / "out" / "index.html").read_text()
    assert "possible duplicate</span>" in page


async def test_takes_in_defaults(simulator: Simulator, tmp_path: Path) -> None:
    path = write_manifest(tmp_path, [{"id": "a", "prompt": "a"}, {"id": "b", "prompt": "b"}],
                          defaults={**OMNI_DEFAULTS, "takes": 2})
    outcome = await run_engine(simulator, path)
    assert outcome.result.ok and len(submits(simulator)) == 4
    assert [len(e.takes) for e in outcome.state.jobs.values()] == [2, 2]


async def run_capped(sim: Simulator, path: Path, cap: float) -> tuple[RunResult, list[Event]]:
    manifest = load_manifest(path)
    events: list[Event] = []
    options = EngineOptions(output_dir=manifest.output_dir, concurrency=2, poll_interval=POLL,
                            retry=FAST, download=DownloadLimits(), cost_of=lambda job: 1.0,
                            max_cost=cap)
    async with RunSession(manifest, sim.base_url, DEMO_KEY, options, events.append) as session:
        result = await session.run(session.plan())
    return result, events


async def test_the_cost_cap_counts_every_take(simulator: Simulator, tmp_path: Path) -> None:
    path = write_manifest(tmp_path, [{"id": "cat", "prompt": "a cat", "takes": 3}])
    result, events = await run_capped(simulator, path, 2.5)
    assert result.submissions_stopped is not None and result.unfinished == 1
    assert len(submits(simulator)) == 2 and load_state(path).spent == 2.0
    assert [len(load_state(path).jobs["cat"].takes)] == [2]
    assert any(isinstance(e, NotSubmitted) for e in events)
    again, _ = await run_capped(simulator, path, 2.5)  # the spend is recorded: still capped
    assert len(submits(simulator)) == 2
    raised, _ = await run_capped(simulator, path, 3)
    assert raised.ok and len(submits(simulator)) == 3
    assert len(load_state(path).jobs["cat"].takes) == 3 and load_state(path).spent == 3.0


def test_plan_text_and_json_count_takes(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    from octobatch.cli import main

    monkeypatch.delenv("OCTOPUSX_API_KEY", raising=False)
    monkeypatch.setenv("OCTOBATCH_SIMULATE_LATENCY", "0.02")
    path = write_manifest(tmp_path, [{"id": "cat", "prompt": "a cat", "takes": 2},
                                     {"id": "dog", "prompt": "a dog"}])
    doc = yaml.safe_load(path.read_text())
    doc["settings"] = {"prices": {"omni-fast": {"per_second": 0.1}}, "currency": "USD"}
    path.write_text(yaml.safe_dump(doc))
    assert main(["plan", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    steps = {s["id"]: s for s in data["steps"]}
    assert (steps["cat"]["takes"], steps["cat"]["cost"]) == (2, 1.6)
    assert (steps["dog"]["takes"], steps["dog"]["cost"]) == (1, 0.8)
    assert data["totals"]["takes"] == 3 and data["totals"]["seconds_by_model"] == {
        "omni-fast": 24}
    assert data["cost"]["total"] == 2.4
    assert main(["run", str(path), "--simulate", "--quiet", "--poll-interval", "0.02"]) == 0
    set_takes(path, "cat", 4)
    capsys.readouterr()
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "more takes wanted; submit 2 more takes (2 of 4 done)" in out
    assert "jobs that will cost money: 1 (2 takes)" in out
    assert "total cost: 1.60 USD" in out


def test_a_kill_after_an_earlier_take_was_moved_resumes_without_losing_it(
    tmp_path: Path,
) -> None:
    """A kill -9 after take 1 was renamed and take 2 placed, before take 2 was journaled."""
    out = tmp_path / "out"
    out.mkdir()
    first = b"take one"
    (out / "cat.take1.mp4").write_bytes(first)
    (out / "cat.mp4").write_bytes(b"take two, placed but not recorded")
    entry = LockEntry(spec_hash="h1", model="omni-fast", status=Status.RUNNING, task_id="t2",
                      takes=(Take(1, "t1", "out/cat.mp4", hashlib.sha256(first).hexdigest(),
                                  len(first), "h1", "2026"),))
    assert keep_earlier_takes(entry, out / "cat.mp4", tmp_path) == {1: "out/cat.take1.mp4"}
    assert (out / "cat.take1.mp4").read_bytes() == first
    (out / "cat.take1.mp4").write_bytes(b"another video")  # not take 1: never overwritten
    with pytest.raises(FileExistsError, match="cannot be kept there"):
        keep_earlier_takes(entry, out / "cat.mp4", tmp_path)
    assert (out / "cat.take1.mp4").read_bytes() == b"another video"
