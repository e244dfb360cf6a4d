"""Outputs are owned: octobatch never replaces a file it did not write for the job.

The rules on real files (`octobatch.owned`), then what the plan, the engine and the command
line do with a file in the way, and a symlinked manifest sharing its target's lockfile.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from engine_helpers import prompts_jobs, run_engine, submits, write_manifest

from octobatch.manifest import load_manifest
from octobatch.owned import Recorded, in_the_way
from octobatch.plan import Action, plan_manifest
from octobatch.simulator import Simulator
from octobatch.state import LockEntry, StateStore, Status, Take, load_state, lock_path_for

REPO = Path(__file__).resolve().parents[1]
VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(200)
COMPLETED_AT = "2026-11-30T12:00:00Z"
BEFORE = 1764503990.0  # 2026-11-30T11:59:50Z: written just before the take completed


def completed(output: str = "out/cat.mp4", data: bytes = VIDEO) -> LockEntry:
    return LockEntry(spec_hash="0" * 64, model="omni-fast", status=Status.COMPLETED,
                     task_id="video_1", output=output, bytes=len(data),
                     sha256=hashlib.sha256(data).hexdigest(), completed_at=COMPLETED_AT)


def put_file(path: Path, data: bytes, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# -- the rules ---------------------------------------------------------------------------------

def test_no_file_is_in_nobodys_way(tmp_path: Path) -> None:
    assert in_the_way(tmp_path / "out" / "cat.mp4", None, tmp_path) is None
    assert in_the_way(tmp_path / "out" / "cat.mp4", completed(), tmp_path) is None


def test_a_file_the_job_never_had_is_foreign(tmp_path: Path) -> None:
    path = put_file(tmp_path / "out" / "cat.mp4", VIDEO)
    reason = in_the_way(path, None, tmp_path)
    assert reason is not None and "was not written by octobatch for this job" in reason
    assert "move it away" in reason
    pending = LockEntry(spec_hash="0" * 64, model="omni-fast")
    assert in_the_way(path, pending, tmp_path) is not None


def test_the_recorded_file_untouched_since_it_completed_is_ours(tmp_path: Path) -> None:
    path = put_file(tmp_path / "out" / "cat.mp4", VIDEO, mtime=BEFORE)
    assert in_the_way(path, completed(), tmp_path) is None


def test_a_file_modified_later_is_ours_only_with_the_same_bytes(tmp_path: Path) -> None:
    path = put_file(tmp_path / "out" / "cat.mp4", VIDEO)  # a fresh checkout: mtime is now
    assert in_the_way(path, completed(), tmp_path) is None
    path.write_bytes(VIDEO[:-1] + b"\x01")  # same size, other bytes
    reason = in_the_way(path, completed(), tmp_path)
    assert reason is not None and "was changed after octobatch wrote it" in reason


def test_another_size_is_never_ours(tmp_path: Path) -> None:
    path = put_file(tmp_path / "out" / "cat.mp4", b"corrupt", mtime=BEFORE)
    reason = in_the_way(path, completed(), tmp_path)
    assert reason is not None and f"has 7 bytes, not the {len(VIDEO)} octobatch wrote" in reason


def test_an_earlier_take_at_the_name_is_ours(tmp_path: Path) -> None:
    older = b"\x00\x00\x00\x18ftypmp42" + bytes(50)
    entry = completed(output="out/cat.take2.mp4")
    take = Take(1, "video_0", "out/cat.mp4", hashlib.sha256(older).hexdigest(), len(older),
                "0" * 64, COMPLETED_AT)
    entry = LockEntry(**{**entry.values(), "takes": (take,)})
    path = put_file(tmp_path / "out" / "cat.mp4", older)
    assert in_the_way(path, entry, tmp_path) is None


def test_the_bytes_arriving_may_replace_themselves(tmp_path: Path) -> None:
    # A kill -9 after a download was placed and before it was recorded leaves exactly the
    # bytes the rerun downloads again.
    path = put_file(tmp_path / "out" / "cat.mp4", VIDEO)
    arriving = Recorded(hashlib.sha256(VIDEO).hexdigest(), len(VIDEO))
    running = LockEntry(spec_hash="0" * 64, model="omni-fast", status=Status.RUNNING,
                        task_id="video_1")
    assert in_the_way(path, running, tmp_path, arriving) is None
    other = Recorded("f" * 64, len(VIDEO))
    assert in_the_way(path, running, tmp_path, other) is not None


def test_a_link_or_a_folder_at_the_name_is_in_the_way(tmp_path: Path) -> None:
    victim = put_file(tmp_path / "home" / "notes.txt", VIDEO)
    link = tmp_path / "out" / "cat.mp4"
    link.parent.mkdir()
    link.symlink_to(victim)
    reason = in_the_way(link, completed(), tmp_path)
    assert reason is not None and "is a symbolic link" in reason
    folder = tmp_path / "out" / "dog.mp4"
    folder.mkdir()
    reason = in_the_way(folder, completed("out/dog.mp4"), tmp_path)
    assert reason is not None and "is not a regular file" in reason


# -- the plan and the engine -------------------------------------------------------------------

async def test_a_file_in_the_way_blocks_the_job_before_anything_is_paid(
        simulator: Simulator, tmp_path: Path) -> None:
    path = write_manifest(tmp_path, prompts_jobs(3))
    committed = put_file(tmp_path / "out" / "clip-1.mp4", b"a clip from the repository")
    plan = plan_manifest(load_manifest(path), load_state(path))
    assert [s.action for s in plan.steps] == [Action.SUBMIT, Action.BLOCKED, Action.SUBMIT]
    assert plan.submissions() == 2  # a blocked job costs nothing
    outcome = await run_engine(simulator, path)
    assert committed.read_bytes() == b"a clip from the repository"
    assert sorted(r.prompt for r in submits(simulator)) == ["clip number 0",
                                                                     "clip number 2"]
    assert outcome.result.completed == 2 and outcome.result.unfinished == 1
    [unfinished] = outcome.named("unfinished")
    assert unfinished.job_id == "clip-1" and "not written by octobatch" in unfinished.reason
    committed.unlink()
    again = await run_engine(simulator, path)
    assert again.result.ok and len(submits(simulator)) == 3


async def test_a_file_where_the_current_take_moves_blocks_only_a_new_take(
        simulator: Simulator, tmp_path: Path) -> None:
    path = write_manifest(tmp_path, prompts_jobs(1))
    assert (await run_engine(simulator, path)).result.ok
    planted = put_file(tmp_path / "out" / "clip-0.take1.mp4", b"not take 1")
    manifest = load_manifest(path)
    [step] = plan_manifest(manifest, load_state(path)).steps
    assert step.action is Action.SKIP  # nothing would move: up to date as before
    [step] = plan_manifest(manifest, load_state(path), replace=["clip-0"]).steps
    assert step.action is Action.BLOCKED
    assert step.reason.startswith("a new take moves take 1 (")
    assert "clip-0.take1.mp4, which holds a file octobatch did not write" in step.reason
    planted.unlink()
    [step] = plan_manifest(manifest, load_state(path), replace=["clip-0"]).steps
    assert step.action is Action.REGENERATE


async def test_a_file_appearing_during_the_run_is_not_replaced(simulator: Simulator,
                                                                tmp_path: Path) -> None:
    path = write_manifest(tmp_path, prompts_jobs(1))
    first = await run_engine(simulator, path)
    assert first.result.ok
    video = tmp_path / "out" / "clip-0.mp4"
    entry = first.state.jobs["clip-0"]
    # Back to "running at the provider", as after a kill -9 between the task id and the
    # download; then someone else's file appears at the name.
    store = StateStore.open(path)
    store.put("clip-0", LockEntry(spec_hash=entry.spec_hash, model=entry.model,
                                  spec=entry.spec, status=Status.RUNNING,
                                  task_id=entry.task_id, attempts=1))
    store.close()
    video.write_bytes(b"someone else's file")
    before = len(submits(simulator))
    second = await run_engine(simulator, path)
    assert video.read_bytes() == b"someone else's file"
    assert len(submits(simulator)) == before
    [unfinished] = second.named("unfinished")
    assert "not written by octobatch" in unfinished.reason and unfinished.task_id
    assert second.state.jobs["clip-0"].task_id == entry.task_id  # the task id is kept
    # The job's own bytes at the name (placed, then the recording lost) are taken as they are.
    video.unlink()
    third = await run_engine(simulator, path)
    assert third.result.ok and len(submits(simulator)) == before
    placed = video.read_bytes()
    store = StateStore.open(path)
    store.put("clip-0", LockEntry(spec_hash=entry.spec_hash, model=entry.model,
                                  spec=entry.spec, status=Status.RUNNING,
                                  task_id=entry.task_id, attempts=1))
    store.close()
    fourth = await run_engine(simulator, path)
    assert fourth.result.ok and video.read_bytes() == placed
    assert len(submits(simulator)) == before


# -- the command line --------------------------------------------------------------------------

def octobatch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OCTOBATCH_SIMULATE_LATENCY": "0.02"}
    env.pop("OCTOPUSX_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "octobatch", *args], check=False, cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60)


def test_plan_and_run_name_the_file_in_the_way(tmp_path: Path) -> None:
    write_manifest(tmp_path, prompts_jobs(2))
    done = octobatch(tmp_path, "run", "batch.yaml", "--simulate", "--poll-interval", "0.02")
    assert done.returncode == 0, done.stderr
    edited = tmp_path / "out" / "clip-0.mp4"
    edited.write_bytes(edited.read_bytes()[:-4] + b"edit")  # same size, edited in place
    later = time.time() + 60  # as if edited a minute after the run (no waiting for it)
    os.utime(edited, (later, later))
    plan = octobatch(tmp_path, "plan", "batch.yaml")
    assert plan.returncode == 0, plan.stderr
    assert "blocked (1)" in plan.stdout
    assert ("clip-0  omni-fast    8s  out/clip-0.mp4 was changed after octobatch wrote it, so "
            "it is not replaced; move it away (or delete it) and rerun") in plan.stdout
    rerun = octobatch(tmp_path, "run", "batch.yaml", "--simulate", "--poll-interval", "0.02")
    assert rerun.returncode == 1
    assert "was changed after octobatch wrote it" in rerun.stdout + rerun.stderr
    assert ("1 job blocked by a file octobatch did not write (named above): move it away, "
            "then rerun") in rerun.stdout + rerun.stderr
    assert "rerun the same command to resume" not in rerun.stdout + rerun.stderr
    assert edited.read_bytes().endswith(b"edit")


def test_a_symlinked_manifest_shares_its_targets_lockfile(tmp_path: Path) -> None:
    real = write_manifest(tmp_path, prompts_jobs(2), name="spring.yaml")
    (tmp_path / "aliases").mkdir()
    alias = tmp_path / "aliases" / "current.yaml"
    alias.symlink_to(Path("..") / real.name)
    assert lock_path_for(alias) == lock_path_for(real)
    first = octobatch(tmp_path, "run", "spring.yaml", "--simulate", "--poll-interval", "0.02")
    assert first.returncode == 0, first.stderr
    again = octobatch(tmp_path, "run", "aliases/current.yaml", "--simulate")
    assert again.returncode == 0, again.stderr
    assert "nothing to do (2 jobs completed)" in again.stdout
    assert sorted(p.name for p in (tmp_path / "aliases").iterdir()) == ["current.yaml"]
    # Its relative paths are the target's: `output_dir: out` beside spring.yaml.
    assert load_manifest(alias).output_dir == tmp_path / "out"
