"""`octobatch run` and the manifests it is given: all checked before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import png_bytes, prompts_jobs, write_manifest

from octobatch.api import run_async
from octobatch.cli import main
from octobatch.manifest import load_manifest
from octobatch.models import known_models
from octobatch.progress import Event, Failed
from octobatch.simulator import DEMO_KEY, Simulator
from octobatch.state import Status, load_state


def test_run_reports_every_invalid_manifest_before_any_request(
        cli_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write_manifest(tmp_path, prompts_jobs(1), name="good.yaml")
    (tmp_path / "a.yaml").write_text("version: 1\njobs:\n  - {id: x, model: omni-fats, "
                                     "prompt: p}\n")
    (tmp_path / "b.yaml").write_text("version: 1\ndefaults: {model: omni-fast, aspect_ratio: "
                                     "'16:9'}\njobs:\n  - {id: y, prompt: p, seconds: 99}\n")
    assert main(["run", "good.yaml", "a.yaml", "b.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        ("a.yaml:3:20: job 'x': model: unknown model 'omni-fats'; known models: "
         f"{', '.join(known_models())} (did you mean 'omni-fast'?)"),
        "b.yaml:4:33: job 'y': seconds: must be a whole number of seconds from 4 to 30, got 99",
        "2 errors found",
    ]
    assert cli_sim.requests == []


def test_every_manifests_output_folder_is_checked_before_the_first_pays(
        cli_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write_manifest(tmp_path, prompts_jobs(1), name="first.yaml")
    (tmp_path / "second").mkdir()
    write_manifest(tmp_path / "second", prompts_jobs(1), name="second.yaml")
    (tmp_path / "second" / "out").write_text("a file where the folder should be")
    assert main(["run", "first.yaml", "second/second.yaml"]) == 1
    err = capsys.readouterr().err
    assert "cannot write to the output folder" in err and "second" in err
    assert "nothing was submitted" in err
    assert cli_sim.requests == [] and not load_state(tmp_path / "first.yaml").jobs


async def test_a_file_removed_or_changed_after_validation_fails_only_its_job(
        simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("gone.png", "edited.png", "kept.png"):
        (tmp_path / name).write_bytes(png_bytes())
    path = write_manifest(tmp_path, [
        {"id": "plain", "prompt": "no files"},
        {"id": "gone", "prompt": "first frame", "first_image_url": "gone.png"},
        {"id": "edited", "model": "jimeng-video-3.0", "prompt": "upload",
         "input_reference": "edited.png"},
        {"id": "kept", "model": "jimeng-video-3.0", "prompt": "kept", "input_reference": "kept.png"},
    ])
    manifest = load_manifest(path)  # validated and hashed here
    (tmp_path / "gone.png").unlink()
    (tmp_path / "edited.png").write_bytes(png_bytes() + b"edited")

    events: list[Event] = []
    result = await run_async(manifest, base_url=simulator.base_url, api_key=DEMO_KEY,
                             poll_interval=0.01, on_event=events.append)
    assert (result.completed, result.failed, result.unfinished) == (2, 2, 0)
    failed = sorted(e.describe() for e in events if isinstance(e, Failed))
    assert failed == [
        ("job 'edited' failed (input_file): input_reference: 'edited.png' changed after the "
         "manifest was validated (run again: octobatch validates it anew and regenerates the job)"),
        ("job 'gone' failed (input_file): first_image_url: 'gone.png' was removed after the "
         "manifest was validated (restore it, or edit the manifest, and run again)"),
    ]
    # Nothing was sent for them, and the lockfile says so: failed, never `submitting`.
    assert sorted(simulator.tasks_created_per_prompt()) == ["kept", "no files"]
    jobs = load_state(path).jobs
    assert {job_id: entry.status for job_id, entry in jobs.items()} == {
        "plain": Status.COMPLETED, "kept": Status.COMPLETED,
        "gone": Status.FAILED, "edited": Status.FAILED}
    assert not any(entry.possible_duplicate or entry.task_id for job_id, entry in jobs.items()
                   if job_id in ("gone", "edited"))
