"""One path rule for people (relative to the current folder), one for programs (absolute)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import prompts_jobs, write_manifest

from octobatch.cli import main
from octobatch.paths import shown
from octobatch.simulator import DEMO_KEY


def test_people_see_paths_from_the_current_folder(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "project" / "out").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "project")
    assert shown(tmp_path / "project" / "out" / "a.mp4") == "out/a.mp4"
    assert shown(tmp_path / "elsewhere.yaml") == "../elsewhere.yaml"
    assert shown("/") == "/"


def test_plan_and_run_agree_on_every_path(simulator_thread: Any, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    server = simulator_thread()
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OCTOBATCH_BASE_URL", server.base_url)
    project = tmp_path / "project"
    project.mkdir()
    manifest = write_manifest(project, prompts_jobs(1))
    monkeypatch.chdir(tmp_path)

    assert main(["plan", "project/batch.yaml"]) == 0
    assert capsys.readouterr().out.startswith(
        "plan for project/batch.yaml (lockfile batch.lock.json, output project/out)\n")
    assert main(["plan", "project/batch.yaml", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["manifest"], plan["lockfile"], plan["output_dir"]) == (
        str(manifest), str(project / "batch.lock.json"), str(project / "out"))

    assert main(["run", "project/batch.yaml", "--json", "--poll-interval", "0.02"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for event in events:  # every event says when, in UTC
        assert event["ts"].endswith("Z")
        assert datetime.fromisoformat(event["ts"][:-1] + "+00:00").tzinfo is not None
    (downloaded,) = [e for e in events if e["event"] == "downloaded"]
    assert downloaded["path"] == str(project / "out" / "clip-0.mp4")
    monkeypatch.chdir(project / "out")  # absolute: opens from anywhere
    assert os.path.getsize(downloaded["path"]) == downloaded["bytes"]
    lock = json.loads((project / "batch.lock.json").read_text())
    assert lock["jobs"]["clip-0"]["output"] == "out/clip-0.mp4"  # the lockfile's own rule
