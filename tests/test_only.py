"""`--only GLOB` on plan, run, status and report: shell-style globs on job ids, repeatable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import write_manifest

from octobatch.cli import main
from octobatch.simulator import DEMO_KEY

JOBS = [{"id": i, "prompt": f"the {i} shot"} for i in ("intro-1", "intro-2", "middle", "outro")]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path, JOBS)


def test_plan_only_lists_the_matching_jobs(manifest: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(manifest), "--json", "--only", "intro-*", "--only", "out?o"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in document["steps"]] == ["intro-1", "intro-2", "outro"]
    assert document["totals"]["costly_jobs"] == 3


def test_a_glob_that_matches_nothing_is_a_usage_error(manifest: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(manifest), "--only", "Intro-*"]) == 2  # globs are case-sensitive
    assert capsys.readouterr().err == (
        f"octobatch: --only 'Intro-*' matches no job in {manifest} (job ids: intro-1, intro-2, "
        "middle, outro); globs are shell-style: * ? [abc]\n")


def test_run_status_and_report_only_touch_the_matching_jobs(
    simulator_thread: Any, manifest: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    server = simulator_thread()
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OCTOBATCH_BASE_URL", server.base_url)
    assert main(["run", str(manifest), "--only", "intro-*", "--poll-interval", "0.02",
                 "--quiet"]) == 0
    assert sorted(server.tasks_created_per_prompt()) == ["the intro-1 shot", "the intro-2 shot"]
    capsys.readouterr()

    assert main(["status", str(manifest), "--json", "--only", "*-2", "--only", "middle"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [j["id"] for j in status["jobs"]] == ["intro-2"]
    assert [(s["id"], s["action"]) for s in status["next_run"]] == [("middle", "submit")]

    assert main(["report", str(manifest), "--only", "intro-1"]) == 0
    page = (manifest.parent / "out" / "index.html").read_text(encoding="utf-8")
    assert "the intro-1 shot" in page and "the intro-2 shot" not in page
    assert "the middle shot" not in page
