"""`octobatch status`: recorded state without network, and what changed since a `git pull`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from octobatch.cli import main
from octobatch.manifest import load_manifest
from octobatch.paths import shown
from octobatch.state import LockEntry, StateStore, Status, lock_path_for

MANIFEST = """\
version: 1
defaults:
  model: omni-fast
  seconds: 4
  aspect_ratio: "16:9"
output_dir: out
jobs:
  - id: beach
    prompt: Ocean waves at golden hour
  - id: cat
    prompt: A cat chases a butterfly
  - id: dog
    prompt: A dog in the snow
  - id: owl
    prompt: An owl at night
"""


def record_run(manifest: Path) -> None:
    """The state a run leaves: beach done (file on disk), cat failed, dog running, owl unsure."""
    jobs = {job.id: job for job in load_manifest(manifest).jobs}
    store = StateStore.open(manifest)

    def put(job_id: str, **fields: Any) -> None:
        job = jobs[job_id]
        store.put(job_id, LockEntry(spec_hash=job.spec_hash, model=job.model,
                                    spec=dict(job.canonical), attempts=1, **fields))

    video = b"\x00\x00\x00\x18ftypmp42" + bytes(1000)
    (manifest.parent / "out").mkdir()
    (manifest.parent / "out" / "beach.mp4").write_bytes(video)
    put("beach", status=Status.COMPLETED, task_id="video_b1", output="out/beach.mp4",
        bytes=len(video), sha256=hashlib.sha256(video).hexdigest())
    put("cat", status=Status.FAILED, task_id="video_c1",
        error={"code": "content_policy", "message": "the prompt was rejected"})
    put("dog", status=Status.RUNNING, task_id="video_d1")
    put("owl", status=Status.UNCERTAIN, possible_duplicate=True)
    store.close()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "spring.yaml"
    path.write_text(MANIFEST)
    record_run(path)
    return path


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["status", *args])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


def test_shows_each_job_counts_and_the_next_run(manifest: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(manifest.parent)  # paths for people are relative to the current folder
    code, out = status(capsys, "spring.yaml")
    assert code == 0
    assert out == """\
spring.yaml (lockfile spring.lock.json)
4 jobs recorded: 1 running, 1 completed, 1 failed, 1 uncertain
  beach  completed                       video_b1  out/beach.mp4
  cat    failed                          video_c1  -              content_policy: the prompt was rejected
  dog    running                         video_d1  -
  owl    uncertain (possible duplicate)  -         -

next run: 1 failed, 1 poll, 1 uncertain
  failed     cat  failed: the prompt was rejected; use --retry-failed to resubmit
  poll       dog  running at the provider (task video_d1)
  uncertain  owl  a submission may have created a task; possible duplicate
"""


def test_after_a_pull_lists_new_changed_orphaned_and_missing(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Someone else changed the manifest: cat's prompt and length, dog removed, fox added; and
    # this machine does not have beach's MP4.
    manifest.write_text(
        MANIFEST.replace("A cat chases a butterfly", "A cat sleeps")
        .replace("    prompt: A cat sleeps\n", "    prompt: A cat sleeps\n    seconds: 8\n")
        .replace("  - id: dog\n    prompt: A dog in the snow\n", "")
        + "  - id: fox\n    prompt: A fox at dawn\n"
    )
    (manifest.parent / "out" / "beach.mp4").unlink()
    code, out = status(capsys, str(manifest), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["manifest_errors"] == []
    assert doc["counts"] == {"running": 1, "completed": 1, "failed": 1, "uncertain": 1}
    assert [(s["id"], s["action"], s["changed"]) for s in doc["next_run"]] == [
        ("beach", "download", []),
        ("cat", "regenerate", ["prompt", "seconds"]),
        ("owl", "uncertain", []),
        ("fox", "submit", []),
        ("dog", "orphan", []),
    ]
    assert doc["next_run"][0]["reason"] == "completed, but the file is missing"
    assert [job["id"] for job in doc["jobs"]] == ["beach", "cat", "owl", "dog"]
    assert doc["jobs"][1] == {
        "id": "cat", "status": "failed", "task_id": "video_c1", "output": None,
        "error": {"code": "content_policy", "message": "the prompt was rejected"},
        "attempts": 1, "possible_duplicate": False,
    }

    code, out = status(capsys, str(manifest))
    assert out.endswith("""
next run: 1 download, 1 regenerate, 1 uncertain, 1 submit, 1 orphan
  download    beach  completed, but the file is missing
  regenerate  cat    changed: prompt, seconds
  uncertain   owl    a submission may have created a task; possible duplicate
  submit      fox    new job
  orphan      dog    not in the manifest; kept until run --prune
""")


def test_an_invalid_manifest_still_shows_the_recorded_state(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest.write_text(MANIFEST.replace("seconds: 4", "seconds: 4\n  colour: red"))
    code, out = status(capsys, str(manifest))
    assert code == 0
    assert "4 jobs recorded: 1 running, 1 completed, 1 failed, 1 uncertain" in out
    assert "  dog    running" in out
    assert out.endswith(
        f"\n{shown(manifest)} has 1 error, so what the next run would do is unknown:\n"
        f"{manifest}:5:3: defaults.colour: unknown field\n"
    )
    code, out = status(capsys, str(manifest), "--json")
    doc = json.loads(out)
    assert doc["next_run"] is None
    assert len(doc["manifest_errors"]) == 1 and "colour" in doc["manifest_errors"][0]
    assert len(doc["jobs"]) == 4


async def test_shows_changes_still_only_in_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spring.yaml"
    path.write_text(MANIFEST)
    job = load_manifest(path).jobs[2]
    store = StateStore.open(path)  # a run in progress: it holds the lock, nothing compacted
    store.put("dog", LockEntry(spec_hash=job.spec_hash, model=job.model, spec=dict(job.canonical)))
    store.task_recorded("dog", task_id="video_live", status=Status.QUEUED, attempts=1,
                        submitted_at="2026-01-02T03:04:05Z")
    await store.sync()
    assert not lock_path_for(path).exists()
    code, out = status(capsys, str(path))
    assert code == 0
    assert "  dog  queued  video_live  -" in out
    assert "  poll    dog    queued at the provider (task video_live)" in out
    store.close()


def test_nothing_recorded_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spring.yaml"
    path.write_text(MANIFEST)
    code, out = status(capsys, str(path))
    assert code == 0
    assert out.startswith(f"{shown(path)} (lockfile spring.lock.json)\nno recorded state yet: nothing has been run\n")
    assert "next run: 4 submit\n" in out
    assert not lock_path_for(path).exists()  # status writes nothing


def test_everything_done(manifest: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(manifest.parent)
    manifest.write_text(MANIFEST.split("  - id: cat")[0])
    store = StateStore.open(manifest)
    for job_id in ("cat", "dog", "owl"):
        store.remove(job_id)
    store.close()
    code, out = status(capsys, str(manifest))
    assert code == 0
    assert out.endswith("1 job recorded: 1 completed\n  beach  completed  video_b1  out/beach.mp4\n\n"
                        "next run: nothing to do, every job is completed and its file is in place\n")


def test_bad_paths_and_corrupt_state_are_one_line_errors(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"octobatch: {tmp_path / 'nope.yaml'}: no such manifest, and no lockfile beside it\n"

    lock = lock_path_for(manifest)
    lock.write_text(lock.read_text().replace('"version": 1', '"version": 7'))
    assert main(["status", str(manifest)]) == 1
    assert capsys.readouterr().err == (
        f"octobatch: {lock}: written by a newer octobatch (lockfile version 7; this octobatch "
        "reads up to version 1); upgrade octobatch (pip install --upgrade octobatch) to read it; "
        "do not move it away: it records tasks already paid for\n"
    )


def test_paths_are_relative_to_the_current_folder_for_people_and_absolute_for_programs(
    manifest: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = manifest.parent.name
    monkeypatch.chdir(manifest.parent.parent)
    code, out = status(capsys, f"{folder}/spring.yaml")
    assert code == 0
    assert out.startswith(f"{folder}/spring.yaml (lockfile spring.lock.json)\n")
    assert f"  beach  completed                       video_b1  {folder}/out/beach.mp4\n" in out
    code, out = status(capsys, f"{folder}/spring.yaml", "--json")
    data = json.loads(out)
    assert data["manifest"] == str(manifest)
    assert data["lockfile"] == str(lock_path_for(manifest))
    assert data["jobs"][0]["output"] == str(manifest.parent / "out" / "beach.mp4")
    assert Path(data["jobs"][0]["output"]).is_file()
