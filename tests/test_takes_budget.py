"""Takes and the cost cap through the real engine, against the simulator on loopback."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from engine_helpers import FAST, POLL, prompts_jobs, submits, write_manifest

from octobatch.download import DownloadLimits
from octobatch.engine import EngineOptions, RunResult
from octobatch.jobs import JobSpec
from octobatch.manifest import load_manifest
from octobatch.progress import Event
from octobatch.session import RunSession
from octobatch.simulator import DEMO_KEY, Simulator
from octobatch.state import StateStore, Status, load_state


async def run(sim: Simulator, path: Path, *, max_cost: float | None = None,
              price: float | None = 1.0, concurrency: int = 1) -> tuple[RunResult, list[Event]]:
    manifest = load_manifest(path)
    events: list[Event] = []

    def cost_of(job: JobSpec) -> float | None:
        return price

    options = EngineOptions(output_dir=manifest.output_dir, concurrency=concurrency,
                            poll_interval=POLL, retry=FAST, download=DownloadLimits(),
                            cost_of=cost_of, max_cost=max_cost)
    async with RunSession(manifest, sim.base_url, DEMO_KEY, options, events.append) as session:
        result = await session.run(session.plan())
    return result, events


def named(events: list[Event], name: str) -> list[Any]:
    return [e for e in events if e.name == name]


async def test_the_cap_stops_submissions_finishes_the_rest_and_survives_reruns(
    simulator: Simulator, tmp_path: Path
) -> None:
    path = write_manifest(tmp_path, prompts_jobs(5))
    result, events = await run(simulator, path, max_cost=2.5)
    assert (result.completed, result.unfinished) == (2, 3)  # a third would make 3.0 > 2.5
    assert result.submissions_stopped == (
        "the cost cap is reached: 2 spent, the next submission would pass --max-cost 2.5; "
        "raise it (--max-cost or settings.max_cost) and rerun to submit the jobs still waiting")
    assert len(named(events, "downloaded")) == 2  # what was submitted is finished
    assert load_state(path).spent == 2.0 and len(submits(simulator)) == 2
    # A rerun with the same cap spends nothing more: the spend is in the lockfile.
    again, _ = await run(simulator, path, max_cost=2.5)
    assert again.unfinished == 3 and len(submits(simulator)) == 2
    raised, _ = await run(simulator, path, max_cost=5)
    assert raised.ok and load_state(path).spent == 5.0 and len(submits(simulator)) == 5


async def test_under_a_cap_an_unpriced_model_is_not_submitted(simulator: Simulator,
                                                              tmp_path: Path) -> None:
    path = write_manifest(tmp_path, prompts_jobs(2))
    result, events = await run(simulator, path, max_cost=10, price=None)
    assert result.unfinished == 2 and not submits(simulator)
    assert "has no price in settings.prices" in named(events, "unfinished")[0].reason
    uncapped, _ = await run(simulator, path, price=None)  # without a cap: runs, counts nothing
    assert uncapped.ok and load_state(path).spent == 0


async def test_a_regenerated_job_keeps_its_previous_video_as_a_take(simulator: Simulator,
                                                                    tmp_path: Path) -> None:
    path = write_manifest(tmp_path, [{"id": "cat", "prompt": "a cat"}])
    await run(simulator, path)
    first = (tmp_path / "out" / "cat.mp4").read_bytes()
    path.write_text(path.read_text().replace("a cat", "a cat in the snow"))
    result, _ = await run(simulator, path)
    assert result.ok
    entry = load_state(path).jobs["cat"]
    assert [(t.take, t.output) for t in entry.takes] == [(1, "out/cat.take1.mp4"),
                                                         (2, "out/cat.mp4")]
    kept = (tmp_path / "out" / "cat.take1.mp4").read_bytes()
    assert kept == first and hashlib.sha256(kept).hexdigest() == entry.takes[0].sha256
    current = (tmp_path / "out" / "cat.mp4").read_bytes()
    assert hashlib.sha256(current).hexdigest() == entry.sha256 == entry.takes[1].sha256
    assert entry.takes[0].spec_hash != entry.takes[1].spec_hash == entry.spec_hash
    assert entry.status is Status.COMPLETED and entry.spent == 2.0


def cli_project(tmp_path: Path, monkeypatch: Any, settings: dict[str, Any] | None = None) -> Path:
    monkeypatch.delenv("OCTOPUSX_API_KEY", raising=False)
    monkeypatch.setenv("OCTOBATCH_SIMULATE_LATENCY", "0.05")
    path = write_manifest(tmp_path, prompts_jobs(3))
    if settings:
        import yaml

        doc = yaml.safe_load(path.read_text())
        doc["settings"] = settings
        path.write_text(yaml.safe_dump(doc))
    return path


def test_replace_plans_and_runs_a_new_take(tmp_path: Path, monkeypatch: Any,
                                           capsys: Any) -> None:
    from octobatch.cli import main

    path = cli_project(tmp_path, monkeypatch)
    fast = ["--simulate", "--quiet", "--poll-interval", "0.02"]
    assert main(["run", str(path), *fast]) == 0
    first = (tmp_path / "out" / "clip-1.mp4").read_bytes()
    capsys.readouterr()
    assert main(["plan", str(path), "--replace", "clip-1"]) == 0
    out = capsys.readouterr().out
    assert ("clip-1  omni-fast    8s  replacement requested (--replace); a new take, the current video is "
            "kept as an earlier take") in out
    assert main(["plan", str(path), "--replace", "nope-*"]) == 2
    assert "--replace 'nope-*' matches no job in" in capsys.readouterr().err
    assert main(["run", str(path), "--replace", "clip-1", *fast]) == 0
    entry = load_state(path).jobs["clip-1"]
    assert [t.take for t in entry.takes] == [1, 2] and entry.spec_hash == entry.takes[0].spec_hash
    assert (tmp_path / "out" / "clip-1.take1.mp4").read_bytes() == first
    assert [t.take for t in load_state(path).jobs["clip-0"].takes] == [1]  # others untouched


def test_max_cost_from_the_command_line_and_the_manifest(tmp_path: Path, monkeypatch: Any,
                                                         capsys: Any) -> None:
    from octobatch.cli import main

    path = cli_project(tmp_path, monkeypatch, {"prices": {"omni-fast": {"per_job": 1}},
                                               "currency": "USD", "max_cost": 1.5})
    fast = ["--simulate", "--quiet", "--poll-interval", "0.02", "--concurrency", "1"]
    assert main(["run", str(path), *fast]) == 1
    err = capsys.readouterr().err
    assert ("submissions were stopped: the cost cap is reached: 1 spent, the next submission "
            "would pass --max-cost 1.5; raise it (--max-cost or settings.max_cost)") in err
    assert load_state(path).spent == 1.0
    assert main(["run", str(path), "--max-cost", "3", *fast]) == 0  # the flag wins
    assert load_state(path).spent == 3.0
    assert main(["run", str(path), "--max-cost", "-1", *fast]) == 2


def test_a_capped_run_says_how_many_jobs_wait_and_what_was_spent(tmp_path: Path,
                                                                  monkeypatch: Any,
                                                                  capsys: Any) -> None:
    import json

    from octobatch.cli import main

    path = cli_project(tmp_path, monkeypatch, {"prices": {"omni-fast": {"per_job": 1}},
                                               "currency": "USD", "max_cost": 1.5})
    fast = ["--simulate", "--poll-interval", "0.02", "--concurrency", "1"]
    assert main(["run", str(path), *fast]) == 1
    out = capsys.readouterr().out
    assert ("\n2 jobs not submitted (submissions were stopped: the cost cap is reached: 1 spent, "
            "the next submission would pass --max-cost 1.5; raise it (--max-cost or "
            "settings.max_cost) and rerun to submit the jobs still waiting); spent so far: 1 USD"
            ) in out
    assert main(["run", str(path), "--json", *fast]) == 1
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (finished,) = [e for e in events if e["event"] == "run_finished"]
    assert finished["not_submitted"] == 2 and finished["unfinished"] == 2


async def test_selecting_an_earlier_take_swaps_the_files_and_the_top_level(
    simulator: Simulator, tmp_path: Path
) -> None:
    from octobatch.takes import select_take

    path = write_manifest(tmp_path, [{"id": "cat", "prompt": "a cat"}])
    await run(simulator, path)
    first = (tmp_path / "out" / "cat.mp4").read_bytes()
    path.write_text(path.read_text().replace("a cat", "a cat in the snow"))
    await run(simulator, path)
    second = (tmp_path / "out" / "cat.mp4").read_bytes()
    store = StateStore.open(path)
    entry = select_take(store, "cat", 1)
    store.close()
    assert (tmp_path / "out" / "cat.mp4").read_bytes() == first
    assert (tmp_path / "out" / "cat.take2.mp4").read_bytes() == second
    assert not (tmp_path / "out" / "cat.take1.mp4").exists()
    assert entry.sha256 == hashlib.sha256(first).hexdigest() and entry.output == "out/cat.mp4"
    assert [(t.take, t.output) for t in load_state(path).jobs["cat"].takes] == [
        (1, "out/cat.mp4"), (2, "out/cat.take2.mp4")]
    # The next plan keeps the chosen take: the file in place matches the recorded one.
    result, _ = await run(simulator, path)
    assert result.ok and len(submits(simulator)) == 2
