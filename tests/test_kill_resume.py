"""`kill -9` of `octobatch run` at random moments, then reruns until it finishes.

The run is a real subprocess against the simulator in this process, so the simulator sees
every request of every attempt and can say which tasks were created, for which prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from octobatch.manifest import load_manifest
from octobatch.models import build_request
from octobatch.simulator import DEMO_KEY, Faults, Simulator, SimulatorThread
from octobatch.state import (
    LockEntry,
    LockState,
    StateStore,
    Status,
    load_state,
    lock_path_for,
    read_lockfile,
)

REPO = Path(__file__).resolve().parents[1]
JOBS = 16
KILLS = 12
SEED = 1120


def write_manifest(directory: Path, jobs: int, *, marker: str = "") -> Path:
    """A manifest of `jobs` omni-fast jobs with distinct prompts (`shot-N`: `shot N ...`)."""
    lines = [
        "version: 1",
        "defaults:",
        "  model: omni-fast",
        "  seconds: 4",
        '  aspect_ratio: "16:9"',
        "output_dir: out",
        "jobs:",
    ]
    for i in range(jobs):
        lines += [f"  - id: shot-{i}", f"    prompt: shot {i} of a lighthouse{marker}"]
    path = directory / "night.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_command(manifest: Path, base_url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "octobatch", "run", str(manifest), "--base-url", base_url,
            "--poll-interval", "0.02", "--concurrency", "4", "--json", *extra]


def run_env(api_key: str = DEMO_KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBATCH_")}
    return {**env, "OCTOPUSX_API_KEY": api_key, "PYTHONPATH": str(REPO)}


@dataclass
class Attempt:
    """One `octobatch run` subprocess with its stdout and stderr going to files."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @classmethod
    def start(cls, command: list[str], directory: Path, name: str, env: dict[str, str]) -> Attempt:
        stdout, stderr = directory / f"{name}.out", directory / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(command, stdout=out, stderr=err, cwd=directory, env=env)
        return cls(process, stdout, stderr)

    def wait_for(self, text: str, timeout: float = 30, *, times: int = 1) -> bool:
        """Wait until `text` is in stdout (`times` times); False if the process ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stdout.read_text(errors="replace").count(text) >= times:
                return True
            if self.process.poll() is not None:
                return self.stdout.read_text(errors="replace").count(text) >= times
            time.sleep(0.005)
        raise AssertionError(f"no {text!r} within {timeout}s; stderr: {self.stderr.read_text()}")

    def finish(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


def tasks_by_prompt(sim: Simulator) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for task in list(sim.tasks.values()):
        found.setdefault(task.prompt, []).append(task.id)
    return found


def prompt_of(job_id: str) -> str:
    return f"shot {job_id.removeprefix('shot-')} of a lighthouse"


def check_outputs(manifest: Path, state: LockState, sim: Simulator) -> None:
    """Every job completed, with exactly the simulator's bytes for its task on disk."""
    assert sorted(state.jobs) == sorted(f"shot-{i}" for i in range(JOBS))
    for job_id, entry in state.jobs.items():
        assert entry.status is Status.COMPLETED, (job_id, entry)
        assert entry.task_id is not None and entry.output is not None
        data = (manifest.parent / entry.output).read_bytes()
        assert data == sim.expected_video(entry.task_id), job_id
        assert entry.bytes == len(data)
        assert entry.sha256 == hashlib.sha256(data).hexdigest()


def test_kill_9_at_random_moments_then_resume(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    manifest = write_manifest(tmp_path, JOBS)
    # Tasks and downloads take long enough that kills land in submission, polling and
    # download alike; some submissions lose their answer (the task is created anyway).
    faults = Faults(submit_drop_first=1, submit_drop=0.05, download_bytes_per_second=2_000_000)
    with SimulatorThread(latency=0.4, jitter=0.2, seed=SEED, faults=faults,
                         video_bytes=200_000) as sim:
        command = run_command(manifest, sim.base_url)
        journaled: dict[str, tuple[str, int]] = {}  # job -> (task id, tasks of its prompt then)
        kills = 0
        for attempt_number in range(KILLS + 10):
            attempt = Attempt.start(command, tmp_path, f"run{attempt_number}", run_env())
            if kills == KILLS:
                assert attempt.finish() == 0, attempt.output()
                break
            if kills % 3 == 0:  # during start-up: imports, loading, replay and compaction
                time.sleep(rng.uniform(0.1, 0.6))
            else:  # during the run itself
                attempt.wait_for('"event": "run_started"')
                time.sleep(rng.uniform(0.0, 0.8))
            attempt.process.kill()
            attempt.finish()
            kills += 1

            # After every kill: the lockfile parses on its own and the combined state loads.
            read_lockfile(lock_path_for(manifest), manifest.name)
            state = load_state(manifest)
            created = tasks_by_prompt(sim)
            for job_id, entry in state.jobs.items():
                if entry.task_id is not None and job_id not in journaled:
                    assert entry.task_id in created[prompt_of(job_id)], (job_id, entry)
                    journaled[job_id] = (entry.task_id, len(created[prompt_of(job_id)]))
        else:
            raise AssertionError("the run never finished")

        state = load_state(manifest)
        check_outputs(manifest, state, sim)
        created = tasks_by_prompt(sim)
        for job_id, entry in state.jobs.items():
            tasks = created[prompt_of(job_id)]
            # No task id lost: the lockfile holds one of the job's tasks, and a second task
            # exists only where a kill hit between sending the POST and journaling its
            # answer, which the lockfile must then report as a possible duplicate.
            assert entry.task_id in tasks
            assert len(tasks) == 1 or entry.possible_duplicate, (job_id, tasks, entry)
            if job_id in journaled:
                task_id, count = journaled[job_id]
                assert entry.task_id == task_id, f"{job_id}: journaled task replaced"
                assert len(tasks) == count, f"{job_id}: submitted again after its task id was journaled"
        assert len(journaled) > 0 and kills == KILLS
        # The dropped first submission really did leave a job with two paid tasks.
        assert any(len(tasks) > 1 for tasks in created.values())
        # No partial download or lockfile survives the resumed run (the gallery is not this
        # test's business).
        videos = {p.name for p in (tmp_path / "out").iterdir() if ".mp4" in p.name}
        assert videos == {f"shot-{i}.mp4" for i in range(JOBS)}
        assert list(tmp_path.glob(".night.lock*")) == []


def test_a_kill_between_the_post_and_its_answer_is_reported_as_a_possible_duplicate(
    tmp_path: Path,
) -> None:
    """The one window a kill can cost money in: the provider created the task, we never heard.

    Reproduced exactly: the state a killed run leaves (`submitting`, with the job's
    idempotency key, synced before the POST) and the task its POST created.
    """
    manifest = write_manifest(tmp_path, 2)
    job = load_manifest(manifest).jobs[0]
    key = "4b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e"
    store = StateStore.open(manifest)
    store.put(job.id, LockEntry(spec_hash=job.spec_hash, model=job.model, spec=dict(job.canonical),
                                status=Status.SUBMITTING, idempotency_key=key))
    store.close()
    with SimulatorThread(latency=0.1, seed=SEED) as sim:
        request = urllib.request.Request(
            f"{sim.base_url}/v1/videos", data=json.dumps(build_request(job).json).encode(),
            headers={"Authorization": f"Bearer {DEMO_KEY}", "Content-Type": "application/json",
                     "Idempotency-Key": key})
        with urllib.request.urlopen(request) as reply:
            lost_task = json.load(reply)["id"]

        attempt = Attempt.start(run_command(manifest, sim.base_url), tmp_path, "rerun", run_env())
        assert attempt.finish() == 0, attempt.output()
        entry = load_state(manifest).jobs[job.id]
        tasks = tasks_by_prompt(sim)[job.prompt]
        assert lost_task in tasks
        # The resubmission went out with the same key; this provider does not deduplicate.
        assert [r.idempotency_key for r in sim.requests
                if r.kind == "submit" and r.prompt == job.prompt] == [key, key]
        assert len(tasks) == 2 and entry.task_id in tasks
        assert entry.possible_duplicate, entry
        assert "possible duplicate" in attempt.output()
