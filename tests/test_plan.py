"""The planning rules as pure functions: jobs x lockfile x sizes on disk -> actions."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from octobatch.jobs import JobSpec, Position
from octobatch.manifest import canonical_hash
from octobatch.plan import Action, Plan, Step, changed_fields, make_plan, observe_outputs
from octobatch.state import LockEntry, LockState, Status


def job(job_id: str = "a", model: str = "omni-fast", **fields: Any) -> JobSpec:
    fields = {"prompt": "waves", "seconds": "8", "aspect_ratio": "16:9", **fields}
    canonical = {"model": model, **fields}
    return JobSpec(job_id, model, fields, (), canonical_hash(canonical), Position("m.yaml", 1, 1),
                   canonical)


def entry(spec: JobSpec, status: Status, **kwargs: Any) -> LockEntry:
    return LockEntry(spec_hash=spec.spec_hash, model=spec.model, status=status,
                     spec=dict(spec.canonical), **kwargs)


def only_step(spec: JobSpec, e: LockEntry | None, size: int | None = None,
              retry_failed: bool = False) -> Step:
    state = LockState("m.yaml", {spec.id: e} if e else {})
    plan = make_plan([spec], state, {spec.id: size}, retry_failed=retry_failed)
    [step] = plan.steps
    assert step.job is spec and step.entry is e
    return step


def test_new_job_is_submitted() -> None:
    step = only_step(job(), None)
    assert (step.action, step.reason) == (Action.SUBMIT, "new job")


def test_pending_entry_is_submitted() -> None:
    spec = job()
    assert only_step(spec, entry(spec, Status.PENDING)).action is Action.SUBMIT


def test_changed_spec_is_regenerated_naming_the_fields() -> None:
    old = job(prompt="waves", seconds="8")
    new = job(prompt="storm", seconds="10")
    step = only_step(new, entry(old, Status.COMPLETED, bytes=10), size=10)
    assert step.action is Action.REGENERATE
    assert step.changed == ("prompt", "seconds")
    assert step.reason == "changed: prompt, seconds"


def test_changed_model_is_named() -> None:
    old = job(model="omni-fast")
    new = job(model="omni-fast-v2v", video="https://example.com/a.mp4")
    step = only_step(new, entry(old, Status.RUNNING, task_id="t1"))
    assert step.action is Action.REGENERATE and step.changed == ("model", "video")


def test_hash_change_without_a_recorded_spec_still_regenerates() -> None:
    spec = job()
    e = entry(spec, Status.COMPLETED, bytes=5)
    e = dataclasses.replace(e, spec_hash="0" * 64, spec={})
    step = only_step(spec, e, size=5)
    assert step.action is Action.REGENERATE and "model" in step.changed


def test_completed_with_matching_file_is_skipped() -> None:
    spec = job()
    step = only_step(spec, entry(spec, Status.COMPLETED, bytes=1234, output="a.mp4"), size=1234)
    assert (step.action, step.reason) == (Action.SKIP, "up to date")


@pytest.mark.parametrize(("size", "reason"), [
    (None, "completed, but the file is missing"),
    (99, "completed, but the file has 99 bytes, not 1234"),
])
def test_completed_with_missing_or_wrong_file_is_downloaded_not_regenerated(
    size: int | None, reason: str
) -> None:
    spec = job()
    step = only_step(spec, entry(spec, Status.COMPLETED, bytes=1234, task_id="t"), size=size)
    assert (step.action, step.reason) == (Action.DOWNLOAD, reason)


@pytest.mark.parametrize("status", [Status.QUEUED, Status.RUNNING])
def test_task_at_the_provider_is_polled(status: Status) -> None:
    spec = job()
    step = only_step(spec, entry(spec, status, task_id="video_1"))
    assert step.action is Action.POLL and "video_1" in step.reason


@pytest.mark.parametrize(("status", "task_id"), [
    (Status.SUBMITTING, None),
    (Status.UNCERTAIN, None),
    (Status.UNCERTAIN, "video_9"),
    (Status.QUEUED, None),
])
def test_maybe_created_tasks_are_uncertain(status: Status, task_id: str | None) -> None:
    spec = job()
    step = only_step(spec, entry(spec, status, task_id=task_id))
    assert step.action is Action.UNCERTAIN and "possible duplicate" in step.reason


def test_failed_jobs_need_retry_failed() -> None:
    spec = job()
    e = entry(spec, Status.FAILED, error={"code": "x", "message": "content policy"})
    step = only_step(spec, e)
    assert step.action is Action.FAILED
    assert step.reason == "failed: content policy; use --retry-failed to resubmit"
    step = only_step(spec, e, retry_failed=True)
    assert step.action is Action.RETRY and "content policy" in step.reason


def test_orphans_come_after_the_manifest_jobs() -> None:
    kept, gone = job("kept"), job("gone", prompt="old")
    state = LockState("m.yaml", {"gone": entry(gone, Status.COMPLETED, bytes=1),
                                 "kept": entry(kept, Status.COMPLETED, bytes=1)})
    plan = make_plan([kept], state, {"kept": 1, "gone": 1})
    assert [(s.job_id, s.action) for s in plan.steps] == [("kept", Action.SKIP),
                                                         ("gone", Action.ORPHAN)]
    orphan = plan.steps[1]
    assert orphan.job is None and orphan.entry is state.jobs["gone"]
    assert orphan.reason == "not in the manifest; kept until run --prune"


def test_totals_count_actions_seconds_and_cost() -> None:
    a, b, c, d = job("a"), job("b", seconds="10"), job("c", model="jimeng-video-3.0"), job("d")
    state = LockState("m.yaml", {
        "c": entry(c, Status.FAILED),
        "d": entry(d, Status.COMPLETED, bytes=3),
        "x": entry(job("x"), Status.RUNNING, task_id="t"),
    })
    plan = make_plan([a, b, c, d], state, {"d": 3}, retry_failed=True)
    counts = plan.counts()
    assert counts[Action.SUBMIT] == 2 and counts[Action.RETRY] == 1
    assert counts[Action.SKIP] == 1 and counts[Action.ORPHAN] == 1
    assert sum(counts.values()) == 5
    assert plan.seconds_by_model() == {"omni-fast": 18, "jimeng-video-3.0": 8}
    assert plan.costly() == 3


def test_plan_is_a_value() -> None:
    spec = job()
    assert make_plan([spec], LockState("m.yaml"), {}) == Plan((Step("a", Action.SUBMIT,
                                                                    "new job", spec, None,
                                                                    takes=1),))


def test_changed_fields_covers_added_and_removed_keys() -> None:
    assert changed_fields({"model": "m", "a": 1, "b": 2}, {"model": "m", "a": 1, "c": 3}) == (
        "b", "c")


def test_observe_outputs_reads_sizes_relative_to_the_lockfile(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.mp4").write_bytes(b"12345")
    (tmp_path / "out" / "dir.mp4").mkdir()
    spec = job()
    state = LockState("m.yaml", {
        "a": entry(spec, Status.COMPLETED, output="out/a.mp4"),
        "b": entry(spec, Status.COMPLETED, output="out/b.mp4"),
        "c": entry(spec, Status.RUNNING),
        "d": entry(spec, Status.COMPLETED, output="out/dir.mp4"),
    })
    assert observe_outputs(tmp_path, state) == {"a": 5, "b": None, "c": None, "d": None}
