"""`kill -9` of a real `octobatch run` of jobs with `takes: 3`, then reruns until it finishes:
no take's task id is ever lost, and a take whose task id was journaled is never submitted
again."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

from test_kill_resume import Attempt, run_command, run_env

from octobatch.simulator import Simulator, SimulatorThread
from octobatch.state import load_state

JOBS = 4
TAKES = 3
KILLS = 4
SEED = 311


def write_manifest(directory: Path) -> Path:
    lines = ["version: 1", "defaults:", "  model: omni-fast", "  seconds: 4",
             '  aspect_ratio: "16:9"', f"  takes: {TAKES}", "output_dir: out", "jobs:"]
    for i in range(JOBS):
        lines += [f"  - id: shot-{i}", f"    prompt: shot {i} of a harbour"]
    path = directory / "takes.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def journaled_task_ids(manifest: Path) -> dict[str, set[str]]:
    """Every task id the lockfile and journal hold now, per job (takes and the one in flight)."""
    found: dict[str, set[str]] = {}
    for job_id, entry in load_state(manifest).jobs.items():
        ids = {t.task_id for t in entry.takes}
        if entry.task_id:
            ids.add(entry.task_id)
        found[job_id] = ids
    return found


def tasks_of(sim: Simulator, job_id: str) -> list[str]:
    prompt = f"shot {job_id.removeprefix('shot-')} of a harbour"
    return [task.id for task in list(sim.tasks.values()) if task.prompt == prompt]


def test_kill_9_during_takes_then_resume(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    manifest = write_manifest(tmp_path)
    with SimulatorThread(latency=0.15, jitter=0.05, seed=SEED, video_bytes=50_000) as sim:
        command = run_command(manifest, sim.base_url)
        seen: dict[str, set[str]] = {}
        kills = 0
        for number in range(KILLS + 10):
            attempt = Attempt.start(command, tmp_path, f"run{number}", run_env())
            if kills == KILLS:
                assert attempt.finish() == 0, attempt.output()
                break
            attempt.wait_for('"event": "run_started"')
            time.sleep(rng.uniform(0.05, 0.4))
            attempt.process.kill()
            attempt.finish()
            kills += 1
            for job_id, ids in journaled_task_ids(manifest).items():
                seen.setdefault(job_id, set()).update(ids)
        else:
            raise AssertionError("the run never finished")

        state = load_state(manifest)
        assert sum(len(ids) for ids in seen.values()) > 0  # the kills landed mid-run
        for job_id, entry in state.jobs.items():
            takes = {t.task_id for t in entry.takes}
            assert len(entry.takes) == TAKES and len(takes) == TAKES, (job_id, entry.takes)
            # No journaled task id is lost or replaced by a new submission: each one ended
            # as one of the job's takes.
            assert seen.get(job_id, set()) <= takes, (job_id, seen.get(job_id), takes)
            created = tasks_of(sim, job_id)
            assert takes <= set(created)
            # A task beyond the takes exists only where a kill hit between a POST and the
            # journaling of its answer.
            assert len(created) - TAKES <= kills, (job_id, created)
            for take in entry.takes:
                data = (tmp_path / take.output).read_bytes()
                assert data == sim.expected_video(take.task_id)
                assert take.sha256 == hashlib.sha256(data).hexdigest()
        names = sorted(p.name for p in (tmp_path / "out").iterdir() if ".mp4" in p.name)
        assert names == sorted(f"shot-{i}{suffix}.mp4" for i in range(JOBS)
                               for suffix in ("", ".take1", ".take2"))
