"""Takes, recorded spend and reviews in the lockfile: the store's transitions and the format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from octobatch.errors import StateError
from octobatch.state import LockEntry, StateStore, Status, load_state, lock_path_for

NOW = "2026-01-02T03:04:05Z"


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "spring.yaml"
    path.write_text("version: 1\njobs: []\n")
    return path


def generate(store: StateStore, job_id: str, spec_hash: str, task_id: str, *, cost: float = 0.0,
             moved: dict[int, str] | None = None) -> LockEntry:
    store.pending(job_id, spec_hash=spec_hash, model="omni-fast", spec={"prompt": spec_hash},
                  idempotency_key=f"key-{task_id}")
    store.submitting(job_id, cost=cost)
    store.task_recorded(job_id, task_id=task_id, status=Status.QUEUED, attempts=1,
                        submitted_at=NOW)
    return store.completed(job_id, video_url=f"https://cdn/{task_id}", output=f"out/{job_id}.mp4",
                           sha256=task_id * 2, bytes=len(task_id), completed_at=NOW, moved=moved)


def test_each_result_is_a_take_and_the_top_level_describes_the_newest(manifest: Path) -> None:
    store = StateStore.open(manifest)
    first = generate(store, "cat", "h1", "t1")
    assert [t.take for t in first.takes] == [1] and first.takes[0].output == "out/cat.mp4"
    second = generate(store, "cat", "h2", "t2", moved={1: "out/cat.take1.mp4"})
    assert [(t.take, t.task_id, t.output, t.spec_hash) for t in second.takes] == [
        (1, "t1", "out/cat.take1.mp4", "h1"), (2, "t2", "out/cat.mp4", "h2")]
    assert (second.task_id, second.output, second.spec_hash) == ("t2", "out/cat.mp4", "h2")
    # Downloading the same task again refreshes its take instead of adding one.
    store.awaiting_task("cat")
    again = store.completed("cat", video_url="https://cdn/t2", output="out/cat.mp4",
                            sha256="ff" * 32, bytes=99, completed_at=NOW)
    assert [t.take for t in again.takes] == [1, 2] and again.takes[1].bytes == 99
    store.close()
    data = json.loads(lock_path_for(manifest).read_text())["jobs"]["cat"]
    assert data["takes"][0] == {"take": 1, "task_id": "t1", "output": "out/cat.take1.mp4",
                                "sha256": "t1t1", "bytes": 2, "spec_hash": "h1",
                                "completed_at": NOW}
    assert load_state(manifest).jobs["cat"] == store.state.jobs["cat"]


def test_a_completed_entry_from_before_takes_becomes_take_1_when_regenerated(
    manifest: Path,
) -> None:
    store = StateStore.open(manifest)
    store.put("cat", LockEntry(spec_hash="h1", model="omni-fast", status=Status.COMPLETED,
                               task_id="t1", output="out/cat.mp4", sha256="ab", bytes=3,
                               completed_at=NOW))
    assert store.state.jobs["cat"].takes == ()  # written as before, byte for byte
    store.pending("cat", spec_hash="h2", model="omni-fast", spec={}, idempotency_key="k")
    entry = store.state.jobs["cat"]
    assert entry.status is Status.PENDING and entry.task_id is None
    assert [(t.take, t.task_id, t.output) for t in entry.takes] == [(1, "t1", "out/cat.mp4")]
    store.close()


def test_spend_is_counted_when_sent_kept_across_takes_and_survives_a_crash(manifest: Path) -> None:
    store = StateStore.open(manifest)
    generate(store, "cat", "h1", "t1", cost=0.1)
    store.pending("cat", spec_hash="h2", model="omni-fast", spec={}, idempotency_key="k")
    store.submitting("cat", cost=0.2)  # counted before the POST goes out
    store.sync_now()
    assert store.state.jobs["cat"].spent == 0.3  # no float noise
    store._backend.close()  # kill -9 during the POST: the journal already holds the cost
    assert load_state(manifest).spent == 0.3
    store = StateStore.open(manifest)
    store.submitting("cat", cost=0.2)  # the resubmission counts again
    store.not_created("cat", cost=0.2)  # ... unless the provider certainly made nothing
    store.put("dog", LockEntry(spec_hash="h", model="m"))
    store.submitting("dog", cost=1.5)
    assert store.state.spent == 1.8
    store.close()
    assert load_state(manifest).spent == 1.8
    assert json.loads(lock_path_for(manifest).read_text())["jobs"]["cat"]["spent"] == 0.3


def test_review_and_take_selection(manifest: Path) -> None:
    store = StateStore.open(manifest)
    generate(store, "cat", "h1", "t1")
    generate(store, "cat", "h1", "t2", moved={1: "out/cat.take1.mp4"})
    store.reviewed("cat", decision="rejected", take=2, at=NOW)
    with pytest.raises(ValueError, match="has no take 7"):
        store.reviewed("cat", decision="approved", take=7, at=NOW)
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        store.reviewed("cat", decision="maybe", take=None, at=NOW)  # type: ignore[arg-type]
    chosen = store.take_selected("cat", 1, {1: "out/cat.mp4", 2: "out/cat.take2.mp4"})
    assert (chosen.task_id, chosen.output, chosen.sha256) == ("t1", "out/cat.mp4", "t1t1")
    assert chosen.selected is not None and chosen.selected.take == 1
    store.reviewed("cat", decision="approved", take=1, at=NOW)
    store.close()
    data = json.loads(lock_path_for(manifest).read_text())["jobs"]["cat"]
    assert data["review"] == {"decision": "approved", "take": 1, "at": NOW}
    assert [t["output"] for t in data["takes"]] == ["out/cat.mp4", "out/cat.take2.mp4"]


@pytest.mark.parametrize(("field", "value", "detail"), [
    ("takes", {"take": 1}, "takes: expected a list, got dict"),
    ("takes", [{"take": 1}], "takes: missing task_id"),
    ("takes", [{"take": "1", "task_id": "t", "output": "o", "sha256": "s", "bytes": 1,
                "spec_hash": "h", "completed_at": "c"}], "takes: take: expected integer, got str"),
    ("review", {"decision": "maybe", "take": None, "at": NOW},
     "review: decision: 'maybe' is not one of"),
    ("spent", "1.5", "spent: expected integer or number, got str"),
    ("spent", True, "spent: expected integer or number, got a boolean"),
])
def test_bad_takes_review_or_spend_name_the_job_and_field(
    manifest: Path, field: str, value: object, detail: str
) -> None:
    lock = lock_path_for(manifest)
    lock.write_text(json.dumps({"version": 1, "manifest": "spring.yaml", "jobs": {
        "cat": {"spec_hash": "h", "model": "omni-fast", field: value}}}))
    with pytest.raises(StateError) as info:
        load_state(manifest)
    assert f"job 'cat': {detail}" in str(info.value)


def test_the_store_keeps_the_spend_total_without_summing(manifest: Path) -> None:
    store = StateStore.open(manifest)
    for i in range(10):
        store.put(f"job{i}", LockEntry(spec_hash="h", model="m"))
        store.submitting(f"job{i}", cost=0.1)
    store.not_created("job0", cost=0.1)
    store.remove("job1")
    store.pending("job2", spec_hash="h2", model="m", spec={}, idempotency_key="k")  # keeps it
    assert store.spent == store.state.spent == 0.8
    store.close()
    again = StateStore.open(manifest)
    assert again.spent == 0.8
    again.close()
