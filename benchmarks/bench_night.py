"""A real night in miniature: a provider that allows each key few unfinished tasks, an outage.

40 jobs whose tasks take 4 s, a provider that allows 4 unfinished tasks per key (the
simulator's --concurrency-limit: one more submission is answered 429
token_concurrency_limit_reached), client concurrency 12; then the same with a 15 s network
outage (nothing listens, open connections drop) starting 6 s in. Prints, per scenario:

- makespan / lower bound. The bound: 40 / 4 = 10 rounds of 4 s = 40 s; with the outage, plus
  its 15 s (tasks keep running at the provider, but no new one can be submitted).
- rejected submissions per job (429s for the limit), polls per job, and the learned limit.

Targets (issue 8): makespan at most 1.15 x the bound, at most 0.5 rejected submissions per job.
Asserts nothing. Run: python benchmarks/bench_night.py [--jobs 40] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from octobatch.engine import EngineOptions
from octobatch.manifest import load_manifest
from octobatch.session import RunSession
from octobatch.simulator import DEMO_KEY, Faults, Simulator

TASK_SECONDS = 4.0
LIMIT = 4
CONCURRENCY = 12
POLL_INTERVAL = 1.0
OUTAGE_AT = 6.0
OUTAGE_SECONDS = 15.0


def write_manifest(directory: Path, jobs: int) -> Path:
    lines = ["version: 1", "defaults:", "  model: omni-fast", "  seconds: 8",
             '  aspect_ratio: "16:9"', "output_dir: out", "jobs:"]
    lines += [f"  - id: night-{i}\n    prompt: night clip number {i}" for i in range(jobs)]
    path = directory / "night.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def scenario(jobs: int, outage: bool) -> dict[str, float]:
    faults = Faults(concurrency_limit=LIMIT,
                    outage_at=OUTAGE_AT if outage else 0.0,
                    outage_seconds=OUTAGE_SECONDS if outage else 0.0)
    sim = Simulator(latency=TASK_SECONDS, faults=faults, video_bytes=4096, seed=7)
    base_url = await sim.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = load_manifest(write_manifest(Path(tmp), jobs))
            options = EngineOptions(output_dir=manifest.output_dir, concurrency=CONCURRENCY,
                                    poll_interval=POLL_INTERVAL)
            started = time.monotonic()
            async with RunSession(manifest, base_url, DEMO_KEY, options) as session:
                result = await session.run(session.plan())
            makespan = time.monotonic() - started
    finally:
        await sim.stop()
    bound = math.ceil(jobs / LIMIT) * TASK_SECONDS + (OUTAGE_SECONDS if outage else 0.0)
    submits = [r for r in sim.requests if r.kind == "submit"]
    return {
        "completed": result.completed,
        "makespan": makespan,
        "bound": bound,
        "ratio": makespan / bound,
        "rejected_per_job": sum(1 for r in submits if r.status == 429) / jobs,
        "polls_per_job": sum(1 for r in sim.requests if r.kind == "poll") / jobs,
        "limit": float(result.learned_limit or 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1, help="repeat each scenario")
    args = parser.parse_args()
    print(f"{args.jobs} jobs of {TASK_SECONDS:g} s, provider limit {LIMIT}, client concurrency "
          f"{CONCURRENCY}, poll interval {POLL_INTERVAL:g} s")
    for outage in (False, True):
        name = f"outage {OUTAGE_SECONDS:g} s at {OUTAGE_AT:g} s" if outage else "no outage"
        runs = [asyncio.run(scenario(args.jobs, outage)) for _ in range(args.rounds)]
        for r in runs:
            print(f"{name:>22}: {int(r['completed'])}/{args.jobs} completed, makespan "
                  f"{r['makespan']:.1f} s / bound {r['bound']:.0f} s = {r['ratio']:.3f}x "
                  f"(target <= 1.15), rejected submissions/job {r['rejected_per_job']:.2f} "
                  f"(target <= 0.5), polls/job {r['polls_per_job']:.1f}, learned limit "
                  f"{int(r['limit'])}")
        if len(runs) > 1:
            print(f"{name:>22}: median ratio "
                  f"{statistics.median(r['ratio'] for r in runs):.3f}x")


if __name__ == "__main__":
    main()
