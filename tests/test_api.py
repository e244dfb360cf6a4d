"""The library facade against a real simulator: plan, run, resume, events, errors."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from octobatch.api import load_manifest, make_plan, run, run_async
from octobatch.errors import ManifestError, StateError, UsageError
from octobatch.plan import Action
from octobatch.progress import Downloaded, Event, RunFinished
from octobatch.simulator import DEMO_KEY, Simulator
from octobatch.state import Status, load_state

ROOT = Path(__file__).resolve().parent.parent

MANIFEST = """\
version: 1
defaults:
  model: omni-fast
  seconds: 4
  aspect_ratio: "16:9"
settings:
  poll_interval: 0.02
jobs:
  - id: beach
    prompt: Ocean waves at golden hour
  - id: "walk-{animal}"
    prompt: A {animal} walks through snow
    matrix:
      animal: [cat, dog]
"""
JOB_IDS = ["beach", "walk-cat", "walk-dog"]


@pytest.fixture
def manifest_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCTOPUSX_API_KEY", raising=False)
    monkeypatch.delenv("OCTOBATCH_BASE_URL", raising=False)
    path = tmp_path / "manifests" / "api.yaml"
    path.parent.mkdir()
    path.write_text(MANIFEST, encoding="utf-8")
    return path


async def test_plan_run_and_resume(manifest_path: Path, simulator: Simulator) -> None:
    manifest = load_manifest(manifest_path)
    assert [s.action for s in make_plan(manifest).steps] == [Action.SUBMIT] * 3

    events: list[Event] = []
    result = await run_async(manifest, base_url=simulator.base_url, api_key=DEMO_KEY,
                             on_event=events.append)
    assert result.ok and result.completed == 3
    downloaded = {e.job_id: e for e in events if isinstance(e, Downloaded)}
    assert sorted(downloaded) == JOB_IDS
    for job_id, event in downloaded.items():
        video = manifest_path.parent / event.path
        assert video.read_bytes() == simulator.expected_video(event.task_id)
        assert video.resolve() == manifest.output_dir / f"{job_id}.mp4"
    assert isinstance(events[-1], RunFinished)
    assert (manifest.output_dir / "index.html").is_file()
    assert all(e.status is Status.COMPLETED for e in load_state(manifest_path).jobs.values())

    # A second run resumes: nothing is submitted again.
    submits_before = sum(simulator.tasks_created_per_prompt().values())
    assert [s.action for s in make_plan(manifest_path).steps] == [Action.SKIP] * 3
    again = await run_async(manifest_path, base_url=simulator.base_url, api_key=DEMO_KEY)
    assert again.completed == 3 and again.ok
    assert sum(simulator.tasks_created_per_prompt().values()) == submits_before


async def test_arguments_override_settings_and_env_gives_key_and_url(
    manifest_path: Path, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OCTOBATCH_BASE_URL", simulator.base_url)
    result = await run_async(manifest_path, concurrency=1)
    assert result.ok
    assert simulator.peak_in_flight == 1


def test_run_without_a_key_is_a_usage_error(manifest_path: Path) -> None:
    with pytest.raises(UsageError, match="OCTOPUSX_API_KEY"):
        run(manifest_path)
    assert not (manifest_path.parent / "api.lock.json").exists()


def test_invalid_manifest_raises_with_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\njobs:\n  - model: omni-slow\n    prompt: x\n  - prompt: y\n"
                   "    seconds: 99\n    model: omni-fast\n    aspect_ratio: '16:9'\n",
                   encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        make_plan(bad)
    assert [d.line for d in caught.value.diagnostics] == [3, 6]


async def test_a_second_run_of_the_same_manifest_is_refused(
    manifest_path: Path, make_simulator: Callable[..., Awaitable[Simulator]]
) -> None:
    slow = await make_simulator(latency=0.5)
    first = asyncio.create_task(run_async(manifest_path, base_url=slow.base_url,
                                          api_key=DEMO_KEY))
    while not (manifest_path.parent / "api.lock.run").exists():
        await asyncio.sleep(0.01)
    with pytest.raises(StateError, match="another octobatch run"):
        await run_async(manifest_path, base_url=slow.base_url, api_key=DEMO_KEY)
    assert (await first).ok



async def test_cancelled_run_keeps_every_task_id_and_resumes(
    manifest_path: Path, make_simulator: Callable[..., Awaitable[Simulator]]
) -> None:
    slow = await make_simulator(latency=1.0)
    running = asyncio.create_task(run_async(manifest_path, base_url=slow.base_url,
                                            api_key=DEMO_KEY))
    # Cancel once every task id is durable (journaled), while the tasks are still running.
    while sum(1 for e in load_state(manifest_path).jobs.values() if e.task_id) < 3:
        await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    recorded = load_state(manifest_path).jobs
    assert sorted(recorded) == JOB_IDS and all(e.task_id for e in recorded.values())
    assert (manifest_path.parent.parent / "output" / "api" / "index.html").is_file()

    result = await run_async(manifest_path, base_url=slow.base_url, api_key=DEMO_KEY)
    assert result.ok and result.completed == 3
    assert sorted(slow.tasks_created_per_prompt().values()) == [1, 1, 1]


def test_readme_library_example_runs(tmp_path: Path) -> None:
    """The README's Python example, verbatim, in a fresh interpreter on a copy of manifests/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests",
                    ignore=shutil.ignore_patterns("*.lock.*"))
    (tmp_path / ".git").mkdir()  # a clone, whose manifests write to its output/
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False,
                          env={"PATH": "", "PYTHONPATH": str(ROOT),
                               "OCTOBATCH_SIMULATE_LATENCY": "0.2"})  # demo pace not needed
    assert done.returncode == 0, done.stderr
    demo = load_manifest(tmp_path / "manifests" / "demo.yaml")
    assert f"{len(demo.jobs)} jobs will cost money" in done.stdout
    for job in demo.jobs:
        assert f"{job.id} -> " in done.stdout
        assert (demo.output_dir / f"{job.id}.mp4").is_file()
    lock = json.loads((tmp_path / "manifests" / "demo.lock.json").read_text(encoding="utf-8"))
    assert {e["status"] for e in lock["jobs"].values()} == {"completed"}
