"""`octobatch which`: from a video file back to the manifest, job and take that produced it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from reviewed_project import build_project, clip, lock_jobs

from octobatch.cli import main
from octobatch.manifest import Manifest


@pytest.fixture
def project(tmp_path: Path) -> Manifest:
    return build_project(tmp_path / "project")


def test_finds_the_take_of_a_renamed_copy(
    project: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = tmp_path / "to the client" / "final cut.mp4"
    sent.parent.mkdir()
    shutil.copy(project.output_dir / "cat.take1.mp4", sent)
    assert main(["which", str(sent), "--in", str(tmp_path / "project")]) == 0
    out = capsys.readouterr().out
    spec_hash = lock_jobs(project)["cat"]["spec_hash"]
    assert out.splitlines()[0] == (
        f"{sent}: {project.path}, job 'cat', take 1 (not selected)")
    for expected in ("task id:     video_cat_1", f"spec hash:   {spec_hash}",
                     "model:       omni-fast", "prompt:      A cat chases a butterfly",
                     "recorded as: out/cat.take1.mp4"):
        assert expected in out


def test_json_and_the_current_folder_by_default(
    project: Manifest, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.path.parent)
    assert main(["which", "out/cat.mp4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (match,) = doc["matches"]
    assert doc["file"] == "out/cat.mp4" and len(doc["sha256"]) == 64
    assert match == {
        "manifest": "shots.yaml", "lockfile": "shots.lock.json", "job": "cat", "take": 2,
        "selected": True, "task_id": "video_cat_2", "spec_hash": lock_jobs(project)["cat"]["spec_hash"],
        "model": "omni-fast", "prompt": "A cat chases a butterfly", "output": "out/cat.mp4",
        "completed_at": "2026-05-01T12:00:00Z", "decision": None,
    }


def test_a_video_no_lockfile_knows_is_exit_1(
    project: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.mp4"
    other.write_bytes(clip("cat", 99))
    assert main(["which", str(other), "--in", str(project.path.parent)]) == 1
    err = capsys.readouterr().err
    assert f"{other}: no lockfile under {project.path.parent} records a video" in err
    assert "--in DIR" in err


def test_bad_arguments_are_exit_2(project: Manifest, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["which", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4: cannot read" in capsys.readouterr().err
    assert main(["which", str(project.output_dir / "cat.mp4"), "--in", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_an_unreadable_lockfile_is_skipped_with_a_warning(
    project: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = lock_jobs(project)["beach"]["sha256"]
    broken = tmp_path / "project" / "sub" / "broken.lock.json"
    broken.parent.mkdir()
    broken.write_text('{"version": 1, "jobs": {"x": "' + digest + '"}}')
    assert main(["which", str(project.output_dir / "beach.mp4"), "--in", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "job 'beach', take 1 (selected)" in captured.out
    assert "warning: skipped" in captured.err and "broken.lock.json" in captured.err
