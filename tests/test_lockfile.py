"""The lockfile: format, determinism, validation on read, atomic replacement, the run lock."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octobatch.errors import StateError
from octobatch.state import (
    LockEntry,
    LockState,
    StateStore,
    Status,
    load_state,
    lock_path_for,
    read_lockfile,
    render_lockfile,
    run_lock_path_for,
    write_lockfile,
)
from octobatch.state.format import RenderCache, _dumps

REPO = Path(__file__).resolve().parents[1]
CONTRACT_FIELDS = {
    "spec_hash", "model", "status", "task_id", "video_url", "output", "sha256", "bytes",
    "attempts", "error", "submitted_at", "completed_at",
}


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def full_entry(n: int = 1) -> LockEntry:
    return LockEntry(
        spec_hash=f"sha256:{n:064x}",
        model="jimeng-video-3.0",
        status=Status.COMPLETED,
        task_id=f"video_{n}",
        video_url=f"https://cdn.example/v/{n}.mp4",
        output=f"../output/spring/job{n}.mp4",
        sha256="ab" * 32,
        bytes=123456,
        attempts=1,
        error=None,
        submitted_at="2026-01-02T03:04:05Z",
        completed_at="2026-01-02T03:05:06Z",
        spec={"model": "jimeng-video-3.0", "prompt": "猫咪在草地上追逐蝴蝶", "size": "1280x720"},
        idempotency_key=f"key-{n}",
        possible_duplicate=False,
    )


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "spring.yaml"
    path.write_text("version: 1\njobs: []\n")
    return path


def test_round_trip_keeps_every_field(manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", full_entry(1))
    store.put("dog", LockEntry(spec_hash="sha256:2", model="omni-fast"))
    store.failed("dog", "content_policy", "拒绝")
    store.close()

    state = read_lockfile(lock_path_for(manifest), manifest.name)
    assert state.manifest == "spring.yaml"
    assert state.jobs["cat"] == full_entry(1)
    assert state.jobs["dog"].status is Status.FAILED
    assert state.jobs["dog"].error == {"code": "content_policy", "message": "拒绝"}


def test_format_is_the_contract_shape(manifest: Path) -> None:
    write_lockfile(lock_path_for(manifest), LockState("spring.yaml", {"cat": full_entry(1)}))
    text = lock_path_for(manifest).read_text(encoding="utf-8")
    data = json.loads(text)
    assert set(data) == {"version", "manifest", "jobs"}
    assert data["version"] == 1 and data["manifest"] == "spring.yaml"
    assert CONTRACT_FIELDS <= set(data["jobs"]["cat"])
    assert data["jobs"]["cat"]["status"] == "completed"
    assert "progress" not in text
    # Human-readable non-ASCII, two-space indentation, sorted keys, one trailing newline.
    assert "猫咪" in text
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_a_render_cache_gives_the_same_bytes_and_renders_only_changed_entries() -> None:
    cache: RenderCache = {}
    jobs = {f"job{i}": full_entry(i) for i in range(6)}
    first = render_lockfile(LockState("m.yaml", dict(jobs)), cache)
    assert first == render_lockfile(LockState("m.yaml", dict(jobs)))
    kept = {job_id: text for job_id, (_, text) in cache.items()}
    # One entry changes, one goes, one comes: the bytes are as without a cache...
    jobs["job1"] = dataclasses.replace(jobs["job1"], status=Status.FAILED,
                                       error={"code": "x", "message": "y"})
    del jobs["job2"]
    jobs["job9"] = full_entry(9)
    again = render_lockfile(LockState("m.yaml", dict(jobs)), cache)
    assert again == render_lockfile(LockState("m.yaml", dict(jobs)))
    # ... and the unchanged entries' text was reused, not rendered again.
    assert all(cache[job_id][1] is kept[job_id] for job_id in ("job0", "job3", "job4", "job5"))
    assert cache["job1"][1] is not kept["job1"] and set(cache) == set(jobs)


def test_bytes_do_not_depend_on_insertion_order() -> None:
    a = LockState("m.yaml", {f"job{i}": full_entry(i) for i in range(20)})
    b = LockState("m.yaml", {f"job{i}": full_entry(i) for i in reversed(range(20))})
    assert render_lockfile(a) == render_lockfile(b)


def test_write_only_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "m.lock.json"
    state = LockState("m.yaml", {"cat": full_entry(1)})
    assert write_lockfile(path, state) is True
    before = path.stat()
    assert write_lockfile(path, LockState("m.yaml", {"cat": full_entry(1)})) is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    state.jobs["cat"] = dataclasses.replace(state.jobs["cat"], attempts=2)
    assert write_lockfile(path, state) is True
    assert path.stat().st_ino != before.st_ino  # replaced by rename, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["m.lock.json"]  # no temp file left behind


def test_store_compacts_only_when_the_state_changed(manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", full_entry(1))
    store.compact()
    written, ino = store.bytes_written, lock_path_for(manifest).stat().st_ino
    store.awaiting_task("cat")  # a real change, reverted: the lockfile bytes do not change
    store.put("cat", full_entry(1))
    store.compact()
    store.close()
    assert store.bytes_written == written
    assert lock_path_for(manifest).stat().st_ino == ino
    # Reopening and closing without changes rewrites nothing.
    again = StateStore.open(manifest)
    again.close()
    assert again.bytes_written == 0
    assert lock_path_for(manifest).stat().st_ino == ino


def test_missing_lockfile_is_an_empty_state(manifest: Path) -> None:
    assert load_state(manifest) == LockState("spring.yaml", {})


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("{not json", "Expecting property name"),
        ('{"version": 0, "jobs": {}}', "unsupported version 0, expected 1"),
        ('{"version": "1", "jobs": {}}', "unsupported version '1', expected 1"),
        ("[]", "expected a JSON object at the top level"),
        ('{"version": 1, "jobs": []}', "jobs: expected an object"),
        ('{"version": 1, "jobs": {"cat": {"model": "omni-fast"}}}', "job 'cat': missing spec_hash"),
        (
            '{"version": 1, "jobs": {"cat": {"spec_hash": "h", "model": "m", "status": "done"}}}',
            "job 'cat': status: 'done' is not one of",
        ),
        (
            '{"version": 1, "jobs": {"cat": {"spec_hash": "h", "model": "m", "bytes": "12"}}}',
            "job 'cat': bytes: expected integer or null, got str",
        ),
        (
            '{"version": 1, "jobs": {"cat": {"spec_hash": "h", "model": "m", "attempts": true}}}',
            "job 'cat': attempts: expected integer, got a boolean",
        ),
    ],
)
def test_corrupt_lockfile_names_the_file_and_the_fix(manifest: Path, content: str, detail: str) -> None:
    lock = lock_path_for(manifest)
    lock.write_text(content)
    with pytest.raises(StateError) as info:
        load_state(manifest)
    message = str(info.value)
    assert message.startswith(f"{lock}: not a valid octobatch lockfile (")
    assert detail in message
    assert "restore it from git" in message
    with pytest.raises(StateError):
        StateStore.open(manifest)
    assert lock.read_text() == content  # a failed open never overwrites what the user has


def test_transitions_reject_mistyped_values_and_unknown_jobs(manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", full_entry(1))
    with pytest.raises(TypeError, match="task_id: expected string or null, got int"):
        store.task_recorded("cat", task_id=17, status=Status.QUEUED,  # type: ignore[arg-type]
                            attempts=1, submitted_at="2026-01-02T03:04:05Z")
    with pytest.raises(ValueError, match="attempts: expected integer, got a boolean"):
        store.uncertain("cat", attempts=True)
    with pytest.raises(ValueError, match="expected queued or running, got completed"):
        store.status_seen("cat", Status.COMPLETED)
    with pytest.raises(TypeError, match="bytes: expected integer or null, got str"):
        store.put("dog", LockEntry(spec_hash="h", model="m", bytes="12"))  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        store.submitting("nobody")
    assert set(store.state.jobs) == {"cat"}
    store.close()
    assert load_state(manifest).jobs["cat"] == full_entry(1)


def test_a_reader_never_sees_a_partial_lockfile(tmp_path: Path) -> None:
    path = tmp_path / "m.lock.json"
    write_lockfile(path, LockState("m.yaml", {}))
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import json, sys
            path, seen, bad = sys.argv[1], set(), 0
            print("ready", flush=True)
            while True:
                with open(path, "rb") as f:
                    data = f.read()
                try:
                    doc = json.loads(data)
                except ValueError:
                    bad += 1
                    continue
                seen.add(len(doc["jobs"]))
                if len(doc["jobs"]) == 150:
                    break
            print(bad, len(seen))
        """), str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
    # Entries big enough that a write takes several syscalls' worth of pages.
    state = LockState("m.yaml", {})
    for i in range(1, 151):
        state.jobs[f"job{i}"] = dataclasses.replace(
            full_entry(i), spec={**full_entry(i).spec, "prompt": "x" * 2000})
        write_lockfile(path, state)
    out, _ = reader.communicate(timeout=30)
    bad, distinct = map(int, out.split())
    assert bad == 0
    assert distinct > 1  # the reader really raced with the writer


def _hold_lock_script(manifest: Path) -> list[str]:
    code = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from octobatch.state import StateStore
        store = StateStore.open(Path(sys.argv[1]))
        print("locked", flush=True)
        time.sleep(60)
    """)
    return [sys.executable, "-c", code, str(manifest)]


def test_run_lock_is_exclusive_across_processes_and_released_by_kill_9(manifest: Path) -> None:
    holder = subprocess.Popen(_hold_lock_script(manifest), stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StateError) as info:
            StateStore.open(manifest)
        assert str(info.value) == (
            f"another octobatch run is already using {manifest} (pid {holder.pid}); "
            "wait for it to finish or stop it"
        )
        # plan/status read without the lock while a run holds it.
        assert load_state(manifest).jobs == {}
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    store = StateStore.open(manifest)  # the kernel dropped the dead holder's lock
    store.close()
    store.close()  # idempotent
    assert run_lock_path_for(lock_path_for(manifest)).name == "spring.lock.run"
    StateStore.open(manifest).close()  # and close() released it


def test_second_open_in_the_same_process_is_refused(manifest: Path) -> None:
    first = StateStore.open(manifest)
    with pytest.raises(StateError, match="another octobatch run is already using"):
        StateStore.open(manifest)
    first.close()


def test_a_closed_store_refuses_changes(manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", full_entry(1))
    store.close()
    with pytest.raises(RuntimeError, match="used after close"):
        store.uncertain("cat", attempts=5)
    assert store.state.jobs["cat"].attempts == 1  # memory did not move ahead of the disk
    assert load_state(manifest).jobs["cat"] == full_entry(1)


def test_a_temp_file_left_by_a_killed_compaction_is_cleared(manifest: Path) -> None:
    lock = lock_path_for(manifest)
    write_lockfile(lock, LockState("spring.yaml", {"cat": full_entry(1)}))
    stale = lock.with_name(".spring.lock.json.tmp")
    stale.write_bytes(b'{"version": 1, "jo')  # a writer killed halfway through
    assert load_state(manifest).jobs["cat"] == full_entry(1)  # readers never look at it
    StateStore.open(manifest).close()
    assert not stale.exists()


def test_an_older_version_is_upgraded_on_read_and_written_as_the_current_one(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a future format change looks like: version 2 renames a field; version 1 files
    # still load, and the next write saves version 2.
    from octobatch.state import format as lock_format

    def v1_to_v2(doc: dict[str, object]) -> dict[str, object]:
        jobs = doc["jobs"]
        assert isinstance(jobs, dict)
        for job in jobs.values():
            job["attempts"] = job.pop("tries")
        return doc

    lock = lock_path_for(manifest)
    lock.write_text(json.dumps({"version": 1, "manifest": "spring.yaml", "jobs": {
        "cat": {"spec_hash": "h", "model": "omni-fast", "tries": 2}}}))
    monkeypatch.setattr(lock_format, "LOCK_VERSION", 2)
    monkeypatch.setitem(lock_format.UPGRADES, 1, v1_to_v2)
    assert load_state(manifest).jobs["cat"].attempts == 2
    store = StateStore.open(manifest)
    store.submitting("cat")
    store.close()
    data = json.loads(lock.read_text())
    assert data["version"] == 2 and data["jobs"]["cat"]["attempts"] == 2
    with pytest.raises(StateError, match=r"version 3; this octobatch reads up to version 2"):
        lock.write_text('{"version": 3, "jobs": {}}')
        load_state(manifest)


def test_a_newer_lockfile_says_upgrade_octobatch_not_start_fresh(manifest: Path) -> None:
    lock = lock_path_for(manifest)
    lock.write_text('{"version": 2, "manifest": "spring.yaml", "jobs": {"cat": {"takes": []}}}')
    for read in (load_state, StateStore.open):
        with pytest.raises(StateError) as info:
            read(manifest)
        assert str(info.value) == (
            f"{lock}: written by a newer octobatch (lockfile version 2; this octobatch reads up "
            "to version 1); upgrade octobatch (pip install --upgrade octobatch) to read it; do "
            "not move it away: it records tasks already paid for")
    assert "version\": 2" in lock.read_text()


CONFLICTED = """\
{
  "jobs": {
<<<<<<< HEAD
    "cat": {"attempts": 1, "model": "omni-fast", "spec_hash": "h1", "status": "completed"}
=======
    "dog": {"attempts": 1, "model": "omni-fast", "spec_hash": "h2", "status": "running"}
>>>>>>> theirs
  },
  "manifest": "spring.yaml",
  "version": 1
}
"""


def test_merge_conflict_markers_are_recognised_with_what_to_do(manifest: Path) -> None:
    lock = lock_path_for(manifest)
    lock.write_text(CONFLICTED)
    for read in (load_state, StateStore.open):
        with pytest.raises(StateError) as info:
            read(manifest)
        assert str(info.value) == (
            f"{lock}: has unresolved git merge-conflict markers (line 3 starts with <<<<<<<); "
            "resolve the conflict first: keep the entries of both sides, and for a job on both "
            "sides the one that got further (see docs/git.md), then run `octobatch plan`")
    assert lock.read_text() == CONFLICTED  # never overwritten
    # A marker-like text inside a JSON string is not a conflict.
    lock.write_text(json.dumps({"version": 1, "manifest": "spring.yaml", "jobs": {
        "cat": {"spec_hash": "h", "model": "m", "spec": {"prompt": "\n<<<<<<< not a marker"}}}},
        indent=2))
    assert load_state(manifest).jobs["cat"].spec["prompt"] == "\n<<<<<<< not a marker"


def test_rendering_entry_by_entry_gives_exactly_the_json_dumps_bytes() -> None:
    for jobs in ({}, {"cat": full_entry(1)},
                 {f"j\u00e9{i}\"\\": full_entry(i) for i in range(12)}):
        state = LockState("m \u732b.yaml", jobs)
        doc = {"version": 1, "manifest": state.manifest,
               "jobs": {k: e.to_json() for k, e in jobs.items()}}
        expected = json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        assert render_lockfile(state) == expected.encode()


# Whatever a spec may hold (the manifest is YAML, so keys need not be strings), and the odd
# floats: the renderer must give json.dumps's text for each, or fail the same way.
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                    st.floats(allow_nan=True, allow_infinity=True))
KEYS = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.text(max_size=6), inner, max_size=4),
    st.dictionaries(KEYS, inner, max_size=3)), max_leaves=20)


@given(value=JSON, margin=st.sampled_from(["", "    "]))
def test_the_lockfile_encoder_writes_what_json_dumps_writes(value: object, margin: str) -> None:
    try:
        expected = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)
    except TypeError as exc:  # keys of several types cannot be sorted
        with pytest.raises(TypeError):
            _dumps(value, margin)
        assert "not supported" in str(exc)
        return
    assert _dumps(value, margin) == expected.replace("\n", "\n" + margin)
