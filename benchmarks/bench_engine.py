"""Run engine benchmarks; prints numbers, asserts nothing.

(a) N jobs (default 10,000) against the simulator in a separate process, near-zero task
    latency, 1 MB videos, concurrency 64: wall time, jobs/s, peak RSS of this (the octobatch)
    process, and state bytes written per job at a small and the full size.
(b) The same work done by a bare aiohttp script (benchmarks/bare_aiohttp.py), in alternating
    rounds: both throughputs, CPU per job and the median ratio; and, for reference, the bare
    script with only what octobatch's guarantees need (sha256, fsync, rename: `--durable`).
(c) Polls per job for a task of L seconds: adaptive pacing vs a fixed interval chosen to give
    the same mean detection delay (modelled on the simulator's progress curve).

Quick run: python benchmarks/bench_engine.py --jobs 1000 --small-jobs 200 --compare-jobs 500
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bare_aiohttp import run_bare

from octobatch.engine import Engine, EngineOptions
from octobatch.manifest import load_manifest
from octobatch.plan import make_plan, observe_outputs
from octobatch.providers import Providers
from octobatch.retry import PollPacer
from octobatch.simulator import DEMO_KEY
from octobatch.simulator.tasks import QUEUED_SHARE
from octobatch.state import StateStore
from octobatch.transport import Transport

SERVE = """
import asyncio, sys
from octobatch.simulator import Simulator
async def main():
    sim = Simulator(latency={latency}, video_bytes={video_bytes}, seed=1)
    print(await sim.start(), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_manifest(directory: Path, jobs: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", "defaults:", "  model: omni-fast", "  seconds: 8",
             '  aspect_ratio: "16:9"', "output_dir: out", "jobs:"]
    lines += [f"  - id: job-{i}\n    prompt: benchmark clip number {i}" for i in range(jobs)]
    path = directory / "bench.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def engine_run(base_url: str, directory: Path, jobs: int, concurrency: int,
                     poll_interval: float) -> dict[str, float]:
    path = write_manifest(directory, jobs)
    t0 = time.perf_counter()
    manifest = load_manifest(path)
    store = StateStore.open(manifest.path)
    plan = make_plan(manifest.jobs, store.state, observe_outputs(store.lock_dir, store.state))
    t1 = time.perf_counter()
    options = EngineOptions(output_dir=manifest.output_dir, concurrency=concurrency,
                            poll_interval=poll_interval)
    cpu = cpu_seconds()
    async with Transport(base_url, DEMO_KEY, concurrency=concurrency) as transport:
        result = await Engine(store, Providers(transport), options).run(plan)
    t2 = time.perf_counter()
    cpu = cpu_seconds() - cpu
    store.close()
    if result.completed != jobs:
        raise SystemExit(f"engine finished only {result.completed} of {jobs} jobs: {result}")
    return {"load": t1 - t0, "run": t2 - t1, "cpu": cpu, "state_bytes": store.bytes_written,
            "rss_now": rss_mb(), "rss_peak": peak_rss_mb()}


def polls_model(latency: float, interval: float, seeds: int = 200) -> tuple[float, float]:
    """(mean polls, mean detection delay) of adaptive pacing for one task of `latency` s."""
    polls_total = delay_total = 0.0
    for seed in range(seeds):
        rng = random.Random(seed)
        pacer = PollPacer(interval, 0.0, fresh=True, rng=rng)
        now, polls = pacer.first_delay(), 0
        while True:
            polls += 1
            if now >= latency:
                break
            progress = (0 if now < latency * QUEUED_SHARE
                        else min(99, max(1, int(100 * now / latency))))
            now += pacer.next_delay(now, progress)
        polls_total += polls
        delay_total += now - latency
    return polls_total / seeds, delay_total / seeds


def print_polls(interval: float) -> None:
    print(f"\n(c) polls per job, poll interval {interval:g} s (adaptive vs fixed interval "
          "giving the same mean detection delay)")
    print(f"{'task length':>12} {'adaptive polls':>15} {'detect delay':>13} "
          f"{'fixed interval':>15} {'fixed polls':>12} {'at 5 s fixed':>13}")
    for latency in (30, 60, 120, 300, 600):
        polls, delay = polls_model(latency, interval)
        # A fixed interval I detects on average I/2 after the end (the end falls uniformly
        # between two polls): the same mean delay needs I = 2 * delay.
        fixed = max(2 * delay, 1e-9)
        print(f"{latency:>10} s {polls:>15.1f} {delay:>11.2f} s {fixed:>13.2f} s "
              f"{math.ceil(latency / fixed):>12d} {math.ceil(latency / interval):>13d}")


async def main_async(args: argparse.Namespace, base_url: str) -> None:
    work = Path(args.dir or tempfile.mkdtemp(prefix="octobatch-bench-"))
    try:
        print(f"simulator at {base_url} (separate process), task latency {args.latency:g} s, "
              f"videos {args.video_bytes / 1e6:g} MB, concurrency {args.concurrency}, "
              f"poll interval {args.poll_interval:g} s")
        print("\n(a) engine")
        for size in sorted({args.small_jobs, args.jobs}):
            numbers = await engine_run(base_url, work / f"engine-{size}", size,
                                       args.concurrency, args.poll_interval)
            print(f"  {size:>6} jobs: load+plan {numbers['load']:.1f} s, run {numbers['run']:.1f} s"
                  f" = {size / numbers['run']:.1f} jobs/s, CPU {1000 * numbers['cpu'] / size:.1f}"
                  f" ms/job; state bytes written {numbers['state_bytes'] / size:.0f}/job; RSS now "
                  f"{numbers['rss_now']:.0f} MB, peak {numbers['rss_peak']:.0f} MB")
            shutil.rmtree(work / f"engine-{size}")  # 1 MB per job adds up
        if args.rounds:
            await compare_with_bare(args, base_url, work)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    print_polls(args.model_interval)


async def compare_with_bare(args: argparse.Namespace, base_url: str, work: Path) -> None:
    """Alternate engine and bare runs: on a shared machine the load drifts, and pairs taken
    back to back compare like with like."""
    n = args.compare_jobs
    print(f"\n(b) overhead vs bare aiohttp: {args.rounds} alternating rounds of {n} jobs")
    ratios, durable_ratios = [], []
    for round_number in range(args.rounds):
        engine = await engine_run(base_url, work / "cmp-engine", n, args.concurrency,
                                  args.poll_interval)
        shutil.rmtree(work / "cmp-engine")
        bare_seconds, bare_cpu = await bare_round(args, base_url, work, durable=False)
        durable_seconds, _ = await bare_round(args, base_url, work, durable=True)
        ratio = bare_seconds / engine["run"]
        ratios.append(ratio)
        durable_ratios.append(durable_seconds / engine["run"])
        print(f"  round {round_number + 1}: octobatch {n / engine['run']:.1f} jobs/s "
              f"(CPU {1000 * engine['cpu'] / n:.1f} ms/job), bare {n / bare_seconds:.1f} jobs/s "
              f"(CPU {1000 * bare_cpu / n:.1f} ms/job): {100 * ratio:.0f}%; bare with sha256, "
              f"fsync and rename {n / durable_seconds:.1f} jobs/s (octobatch "
              f"{100 * durable_ratios[-1]:.0f}% of it)")
    print(f"  median: octobatch throughput is {100 * statistics.median(ratios):.0f}% of bare, "
          f"{100 * statistics.median(durable_ratios):.0f}% of bare with only the guarantees")


async def bare_round(args: argparse.Namespace, base_url: str, work: Path, *,
                     durable: bool) -> tuple[float, float]:
    """(seconds, CPU seconds) of one bare round."""
    cpu = cpu_seconds()
    seconds = await run_bare(base_url, args.compare_jobs, args.concurrency, work / "cmp-bare",
                             args.poll_interval, durable)
    cpu = cpu_seconds() - cpu
    shutil.rmtree(work / "cmp-bare")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--small-jobs", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--video-bytes", type=int, default=1_000_000)
    parser.add_argument("--latency", type=float, default=0.0, help="simulated task seconds")
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--model-interval", type=float, default=5.0,
                        help="poll interval for the (c) model")
    parser.add_argument("--compare-jobs", type=int, default=2_000, help="jobs per round of (b)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (b); 0 skips it")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE.format(latency=args.latency, video_bytes=args.video_bytes)],
        stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:
        asyncio.run(main_async(args, server.stdout.readline().strip()))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
