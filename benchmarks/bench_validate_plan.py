"""How long `validate` and `plan` take on a generated 10,000-job manifest (target: < 2 s each).

Measures the library calls (load_manifest, load_state + observe_outputs + make_plan) and the
whole command in a fresh process, the way a user runs it. The manifest mixes models, explicit
and derived ids, defaults, a matrix and local image references; a lockfile records half of
the jobs as completed (their files present), so `plan` has real work to compare.

    python benchmarks/bench_validate_plan.py [--jobs N] [--repeat R]

(with octobatch installed, e.g. `pip install -e .`)
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from octobatch.manifest import load_manifest
from octobatch.plan import make_plan, observe_outputs
from octobatch.state import LockEntry, LockState, Status, load_state, write_lockfile

REPO = Path(__file__).resolve().parent.parent

MODELS = ("omni-fast", "jimeng-video-3.0", "omni-fast", "jimeng-video-2.0")


def generate(directory: Path, jobs: int) -> Path:
    """Write a manifest with `jobs` jobs (4 of them from one matrix) and its assets."""
    shutil.copytree(REPO / "manifests" / "assets", directory / "assets")
    lines = [
        "version: 1",
        "defaults:",
        "  model: omni-fast",
        "  seconds: 8",
        '  aspect_ratio: "16:9"',
        "  resolution: 720p",
        "settings: {concurrency: 8, poll_interval: 5}",
        "jobs:",
        '  - id: "walk-{animal}-{aspect_ratio}"',
        '    prompt: "A {animal} walks through snow"',
        "    matrix:",
        "      animal: [cat, dog]",
        '      aspect_ratio: ["16:9", "9:16"]',
    ]
    for i in range(jobs - 4):
        model = MODELS[i % len(MODELS)]
        lines.append(f"  - prompt: Scene number {i} of the long batch, cinematic light")
        if i % 3:  # two thirds with explicit ids, the rest derived from content
            lines.append(f"    id: scene-{i:05d}")
        if model != "omni-fast":
            lines.append(f"    model: {model}")
            lines.append("    size: 1280x720")
        if model == "jimeng-video-3.0":
            lines.append("    input_reference: assets/cat.png")
        elif i % 10 == 0:
            lines.append("    images: [assets/character.png, assets/style.png]")
    path = directory / "big.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def record_half_completed(path: Path) -> None:
    manifest = load_manifest(path)
    out = path.parent / "out"
    out.mkdir()
    jobs = {}
    for job in manifest.jobs[::2]:
        (out / f"{job.id}.mp4").write_bytes(b"0" * 64)
        jobs[job.id] = LockEntry(job.spec_hash, job.model, Status.COMPLETED, task_id="t",
                                 output=f"out/{job.id}.mp4", bytes=64, spec=dict(job.canonical))
    write_lockfile(manifest.lock_path, LockState(path.name, jobs))


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Median and best wall time, and median CPU time (this process and its children).

    CPU time is reported because wall time on a busy shared machine mostly measures the
    other processes.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def command(path: Path, *argv: str) -> Callable[[], None]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run() -> None:
        subprocess.run([sys.executable, "-m", "octobatch", *argv, str(path)], check=True,
                       stdout=subprocess.DEVNULL, env=env)

    return run


def plan_library(path: Path) -> None:
    manifest = load_manifest(path)
    state = load_state(manifest.path)
    make_plan(manifest.jobs, state, observe_outputs(manifest.lock_path.parent, state))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(Path(tmp), args.jobs)
        record_half_completed(path)
        size = path.stat().st_size
        print(f"manifest: {args.jobs:,} jobs, {size / 1024:.0f} KiB; lockfile: "
              f"{args.jobs // 2:,} completed entries")
        results = [
            ("load_manifest (library)", lambda: load_manifest(path)),
            ("load + plan (library)", lambda: plan_library(path)),
            ("octobatch validate (process)", command(path, "validate")),
            ("octobatch plan (process)", command(path, "plan")),
            ("octobatch plan --json (process)", command(path, "plan", "--json")),
        ]
        for name, fn in results:
            median, best, cpu = timed(fn, args.repeat)
            print(f"{name:<34} wall median {median:6.3f} s  best {best:6.3f} s  "
                  f"cpu {cpu:6.3f} s")


if __name__ == "__main__":
    main()
