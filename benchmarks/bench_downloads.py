"""Download benchmark on a network that cuts transfers; prints numbers, asserts nothing.

N videos (default 20 of 50 MB) are generated and downloaded by the real engine from a
simulator in its own process whose CDN cuts 1% of 64 KB chunks mid-transfer (restarting from
byte 0 would almost never finish one: 0.99^800 is 0.03%), and the same run against a clean
simulator, in alternating rounds. It prints, per round and as medians:

- bytes on the wire per byte stored (the simulator's count of body bytes it wrote, cut
  transfers included, over the bytes of the finished files); target at most 1.1;
- wall time of the cut run over the clean run's; target at most 1.5x.

Quick run: python benchmarks/bench_downloads.py --videos 4 --mb 10 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from octobatch.engine import EngineOptions
from octobatch.manifest import load_manifest
from octobatch.session import RunSession
from octobatch.simulator import DEMO_KEY
from octobatch.state import load_state

# The simulator in a child process: its base URL on the first line, then the body bytes it
# has sent per task, as JSON, each time a line arrives on its stdin.
SERVE = """
import asyncio, json, sys
from octobatch.simulator import Faults, Simulator
async def main():
    sim = Simulator(latency=0.2, video_bytes={video_bytes}, seed={seed},
                    faults=Faults(cut_chunk_rate={rate}))
    print(await sim.start(), flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        print(json.dumps(dict(sim.bytes_sent_per_task)), flush=True)
asyncio.run(main())
"""


class SimulatorProcess:
    def __init__(self, video_bytes: int, rate: float, seed: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE.format(video_bytes=video_bytes, rate=rate, seed=seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise SystemExit("the simulator did not start")

    def bytes_sent(self) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return {k: int(v) for k, v in json.loads(self.process.stdout.readline()).items()}

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def write_manifest(folder: Path, videos: int, tag: str) -> Path:
    jobs = [{"id": f"v{i}", "prompt": f"benchmark {tag} video {i}"} for i in range(videos)]
    doc = {"version": 1, "output_dir": "out", "jobs": jobs,
           "defaults": {"model": "omni-fast", "seconds": 8, "aspect_ratio": "16:9"}}
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


async def one_run(sim: SimulatorProcess, videos: int, tag: str) -> tuple[float, int, int, int]:
    """(wall seconds, bytes stored, bytes on the wire, jobs completed) of one whole run."""
    folder = Path(tempfile.mkdtemp(prefix="octobatch-bench-downloads-"))
    try:
        manifest = load_manifest(write_manifest(folder, videos, tag))
        options = EngineOptions(output_dir=manifest.output_dir, poll_interval=0.2)
        started = time.perf_counter()
        async with RunSession(manifest, sim.base_url, DEMO_KEY, options) as run:
            result = await run.run(run.plan())
        wall = time.perf_counter() - started
        entries = load_state(manifest.path).jobs.values()
        stored = sum(e.bytes or 0 for e in entries)
        sent = sim.bytes_sent()
        wire = sum(sent.get(e.task_id or "", 0) for e in entries)
        return wall, stored, wire, result.completed
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--mb", type=float, default=50.0, help="size of each video in MB")
    parser.add_argument("--rate", type=float, default=0.01, help="share of 64 KB chunks cut")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = int(args.mb * 1024 * 1024)
    clean = SimulatorProcess(size, 0.0, seed=1)
    cut = SimulatorProcess(size, args.rate, seed=2)
    print(f"{args.videos} videos of {args.mb:g} MB; {args.rate:.1%} of 64 KB chunks cut; "
          f"{args.rounds} alternating rounds")
    ratios, overheads = [], []
    try:
        for n in range(args.rounds):
            order = [("clean", clean), ("cut", cut)]
            if n % 2:
                order.reverse()
            walls: dict[str, float] = {}
            for name, sim in order:
                wall, stored, wire, done = await one_run(sim, args.videos, f"{n}-{name}")
                walls[name] = wall
                per_byte = wire / stored if stored else float("nan")
                if name == "cut":
                    overheads.append(per_byte)
                print(f"round {n + 1} {name:5}: {done}/{args.videos} completed in {wall:6.2f} s, "
                      f"{wire / 1e6:8.1f} MB on the wire for {stored / 1e6:8.1f} MB stored "
                      f"({per_byte:.3f} per byte)")
            ratios.append(walls["cut"] / walls["clean"])
            print(f"round {n + 1} cut/clean wall time: {ratios[-1]:.2f}x")
    finally:
        clean.close()
        cut.close()
    print(f"bytes on the wire per byte stored (cut network), median: "
          f"{statistics.median(overheads):.3f} (target <= 1.1)")
    print(f"wall time, cut network / clean network, median: {statistics.median(ratios):.2f}x "
          f"(target <= 1.5x)")


if __name__ == "__main__":
    asyncio.run(main())
