"""Output folders the kernel refuses to write to, before and after paying: real permission bits.

Root ignores permission bits (CAP_DAC_OVERRIDE), and the suite may run as root (CI does). So
when it does, the run under test drops the capabilities that bypass them from its bounding set
before it starts: it stays uid 0, owner of the test's files, and the kernel answers EACCES
for a folder without write permission exactly as it does for anyone else. (Running it as an
unprivileged uid instead would need the interpreter and the installed package readable by
that uid, which a per-user Python installation is not.) Not root, chmod alone suffices.

The simulator runs in this process (a thread on loopback) and the run is a real `octobatch
run` subprocess; tasks whose prompt says `[stuck]` never finish until the test lets them, so
"after submission" is a state the test waits for, not a moment it hopes to hit.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import write_manifest

from octobatch.simulator import DEMO_KEY, Simulator
from octobatch.state import journal_path_for, load_state, lock_path_for

REPO = Path(__file__).resolve().parents[1]
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
DENIED = "permission denied; make the folder writable or choose another --output-dir"


def _without_root_overrides() -> None:
    """In the child before exec: after exec, root no longer bypasses permission bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _preexec() -> Callable[[], None] | None:
    return _without_root_overrides if os.geteuid() == 0 else None


def octobatch(sim: Simulator, cwd: Path, *manifests: str, wait: bool = True) -> Any:
    command = [sys.executable, "-m", "octobatch", "run", *manifests, "--base-url",
               sim.base_url, "--json", "--poll-interval", "0.01"]
    env = {"OCTOPUSX_API_KEY": DEMO_KEY, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    if wait:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=60, preexec_fn=_preexec(), check=False)
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_preexec())


def events(stdout: str, name: str) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, stdout.splitlines()) if e["event"] == name]


def submits(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.kind == "submit")


def test_the_kernel_refuses_the_run_under_test(tmp_path: Path) -> None:
    # The premise of this file: without it the tests below would prove nothing as root.
    (tmp_path / "ro").mkdir(mode=0o555)
    done = subprocess.run([sys.executable, "-c", "open('ro/x', 'w')"], cwd=tmp_path,
                          capture_output=True, text=True, preexec_fn=_preexec(), check=False)
    assert done.returncode == 1 and "PermissionError" in done.stderr
    assert not (tmp_path / "ro" / "x").exists()


def test_an_unwritable_output_folder_stops_the_run_before_anything_is_submitted(
        simulator_thread: Any, tmp_path: Path) -> None:
    sim: Simulator = simulator_thread(latency=0.01)
    manifest = write_manifest(tmp_path, [{"id": "clip-0", "prompt": "waves"}])
    (tmp_path / "out").mkdir(mode=0o555)
    done = octobatch(sim, tmp_path, manifest.name)
    assert done.returncode == 1
    assert done.stderr == (f"octobatch: cannot write to the output folder {tmp_path / 'out'}: "
                           f"{DENIED}; nothing was submitted\n")
    assert submits(sim) == 0 and not load_state(manifest).jobs
    (tmp_path / "out").chmod(0o755)  # the fix the message names
    assert octobatch(sim, tmp_path, manifest.name).returncode == 0 and submits(sim) == 1


def wait_until(condition: Callable[[], bool], run: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert run.poll() is None, f"the run ended before {what}: {run.communicate()}"
        assert time.monotonic() < deadline, f"no {what} within 60 s"
        time.sleep(0.01)


def test_an_output_folder_made_unwritable_after_paying_keeps_the_tasks_and_the_run_goes_on(
        simulator_thread: Any, tmp_path: Path) -> None:
    # a.yaml's two tasks are submitted and journaled, then its folder becomes read-only, then
    # the tasks finish: both jobs end unfinished with their task ids, b.yaml still runs.
    sim: Simulator = simulator_thread(latency=0.01)
    a = write_manifest(tmp_path, [{"id": f"a-{i}", "prompt": f"[stuck] a {i}"} for i in range(2)],
                       name="a.yaml")
    a.write_text(a.read_text().replace("output_dir: out\n", "output_dir: out-a\n"))
    write_manifest(tmp_path, [{"id": "b-0", "prompt": "b"}], name="b.yaml")
    journal = journal_path_for(lock_path_for(a))
    out = tmp_path / "out-a"
    run = octobatch(sim, tmp_path, "a.yaml", "b.yaml", wait=False)
    try:
        wait_until(lambda: len(sim.tasks) == 2 and journal.exists()
                   and all(t in journal.read_text() for t in sim.tasks), run,
                   "both submissions journaled")
        out.chmod(0o555)
        for task in list(sim.tasks.values()):
            task.outcome = "completed"  # done at its next poll
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 1, stderr
    assert "Traceback" not in stderr
    unfinished = {e["job_id"]: e for e in events(stdout, "unfinished")}
    assert sorted(unfinished) == ["a-0", "a-1"]
    for job_id, event in unfinished.items():
        assert event["task_id"] in sim.tasks
        assert event["reason"] == (f"cannot write {out / f'.{job_id}.mp4.part'}: {DENIED} (the "
                                   "task is kept; the rerun downloads it without paying again)")
    state = load_state(a)
    assert {j: e.task_id for j, e in state.jobs.items()} == {
        j: e["task_id"] for j, e in unfinished.items()}
    assert [e["job_id"] for e in events(stdout, "downloaded")] == ["b-0"]
    assert (
        f"octobatch: cannot write the gallery {out / 'index.html'}: Permission denied; every "
        "result is in a.lock.json: fix the folder, then `octobatch report a.yaml` writes the "
        "page\n") in stderr
    assert submits(sim) == 3

    out.chmod(0o755)
    again = octobatch(sim, tmp_path, "a.yaml", "b.yaml")
    assert again.returncode == 0, again.stderr
    assert submits(sim) == 3  # nothing paid twice
    assert sorted(p.name for p in out.glob("*.mp4")) == ["a-0.mp4", "a-1.mp4"]
    for job_id, event in unfinished.items():
        data = (out / f"{job_id}.mp4").read_bytes()
        assert data == sim.expected_video(event["task_id"])


def test_a_gallery_that_cannot_be_written_is_reported_and_the_next_manifest_runs(
        simulator_thread: Any, tmp_path: Path) -> None:
    # A folder standing at `index.html` fails the page's rename also for root. The videos
    # and the lockfile are all there; only the page is missing, and the run says how to get it.
    from octobatch.api import run
    from octobatch.errors import OctobatchError

    sim: Simulator = simulator_thread(latency=0.01)
    a = write_manifest(tmp_path, [{"id": "a-0", "prompt": "a"}], name="a.yaml")
    a.write_text(a.read_text().replace("output_dir: out\n", "output_dir: out-a\n"))
    write_manifest(tmp_path, [{"id": "b-0", "prompt": "b"}], name="b.yaml")
    (tmp_path / "out-a" / "index.html").mkdir(parents=True)
    done = octobatch(sim, tmp_path, "a.yaml", "b.yaml")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [e["job_id"] for e in events(done.stdout, "downloaded")] == ["a-0", "b-0"]
    assert (f"octobatch: cannot write the gallery {tmp_path / 'out-a' / 'index.html'}: Is a "
            "directory; every result is in a.lock.json: fix the folder, then `octobatch "
            "report a.yaml` writes the page\n") in done.stderr
    assert load_state(a).jobs["a-0"].status.value == "completed"
    assert (tmp_path / "out" / "index.html").is_file()
    with pytest.raises(OctobatchError, match="cannot write the gallery .*Is a directory"):
        run(a, base_url=sim.base_url, api_key=DEMO_KEY)  # the library raises, as it did
