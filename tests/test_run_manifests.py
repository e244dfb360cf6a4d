"""`octobatch run` and the manifests it is given: all checked before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engine_helpers import prompts_jobs, write_manifest

from octobatch.cli import main
from octobatch.simulator import DEMO_KEY, Simulator


@pytest.fixture
def sim(simulator_thread: Any, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    server: Simulator = simulator_thread()
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OCTOBATCH_BASE_URL", server.base_url)
    return server


def test_run_reports_every_invalid_manifest_before_any_request(
        sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
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
         "jimeng-video-2.0, jimeng-video-3.0, omni-fast, omni-fast-v2v "
         "(did you mean 'omni-fast'?)"),
        "b.yaml:4:33: job 'y': seconds: must be a whole number of seconds from 4 to 30, got 99",
        "2 errors found",
    ]
    assert sim.requests == []
