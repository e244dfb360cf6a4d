"""How fast the simulator answers: polls per second and download throughput.

The simulator runs as `octobatch simulate` in its own process; the load comes from aiohttp
clients in other processes (many concurrent keep-alive connections each), so the numbers
are what a real client sees over loopback.

    python benchmarks/bench_simulator.py [--duration 5] [--connections 32] [--clients 2]

Target: at least 3,000 polls per second.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import subprocess
import sys
import time

import aiohttp

from octobatch.simulator import DEMO_KEY

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
BODY = {"model": "omni-fast", "prompt": "benchmark", "seconds": "8", "aspect_ratio": "16:9"}


def start_simulator(video_bytes: int) -> tuple[subprocess.Popen[str], str]:
    # With latency 0 the even-numbered tasks complete at once and "[stuck]" keeps the odd ones
    # running, so the polls render both kinds of answer.
    process = subprocess.Popen(
        [sys.executable, "-m", "octobatch", "simulate", "--port", "0", "--latency", "0",
         "--video-bytes", str(video_bytes), "--seed", "1", "--quiet"],
        stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = process.stdout.readline()
    if "listening on" not in first:
        process.kill()
        raise SystemExit(f"the simulator did not start: {first!r}")
    return process, first.rsplit(" ", 1)[1].strip()


async def create_tasks(base_url: str, count: int) -> list[str]:
    async with aiohttp.ClientSession() as session:
        ids = []
        for i in range(count):
            prompt = f"benchmark {i}" + (" [stuck]" if i % 2 else "")
            async with session.post(f"{base_url}/v1/videos", json={**BODY, "prompt": prompt},
                                    headers=AUTH) as r:
                ids.append((await r.json())["id"])
        return ids


async def poll_load(base_url: str, ids: list[str], connections: int,
                    duration: float) -> tuple[int, int, list[float]]:
    """(ok, errors, latencies in seconds) of polls sent for `duration` seconds."""
    ok = errors = 0
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=AUTH) as session:
        deadline = time.perf_counter() + duration

        async def worker(offset: int) -> None:
            nonlocal ok, errors
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(f"{base_url}/v1/videos/{ids[i % len(ids)]}") as r:
                    await r.read()
                    if r.status == 200:
                        ok += 1
                    else:
                        errors += 1
                latencies.append(time.perf_counter() - started)
                i += 1

        await asyncio.gather(*(worker(n) for n in range(connections)))
    return ok, errors, latencies


def client_process(base_url: str, ids: list[str], connections: int, duration: float,
                   results: multiprocessing.Queue[tuple[int, int, list[float]]]) -> None:
    results.put(asyncio.run(poll_load(base_url, ids, connections, duration)))


async def download_load(base_url: str, ids: list[str], connections: int) -> tuple[int, float]:
    """(bytes, seconds) to fetch every completed task's video over `connections` connections."""
    total = 0
    semaphore = asyncio.Semaphore(connections)
    async with aiohttp.ClientSession(headers=AUTH) as session:

        async def fetch(task_id: str) -> None:
            nonlocal total
            async with semaphore, session.get(f"{base_url}/v1/videos/{task_id}/content") as r:
                assert r.status == 200, r.status
                async for chunk in r.content.iter_chunked(1 << 16):
                    total += len(chunk)

        started = time.perf_counter()
        await asyncio.gather(*(fetch(task_id) for task_id in ids))
        return total, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of poll load")
    parser.add_argument("--connections", type=int, default=32, help="connections per client")
    # One client process saturates a core before the server does; two measure the server.
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--tasks", type=int, default=200, help="tasks to poll round-robin")
    parser.add_argument("--video-bytes", type=int, default=1_000_000, help="size of each video")
    args = parser.parse_args()

    process, base_url = start_simulator(args.video_bytes)
    try:
        ids = asyncio.run(create_tasks(base_url, args.tasks))
        ctx = multiprocessing.get_context("spawn")
        results: multiprocessing.Queue[tuple[int, int, list[float]]] = ctx.Queue()
        clients = [ctx.Process(target=client_process, args=(base_url, ids, args.connections,
                                                            args.duration, results))
                   for _ in range(args.clients)]
        for client in clients:
            client.start()
        outcomes = [results.get(timeout=args.duration + 60) for _ in clients]
        for client in clients:
            client.join()
        ok = sum(o[0] for o in outcomes)
        errors = sum(o[1] for o in outcomes)
        latencies = sorted(x for o in outcomes for x in o[2])
        p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
        print(f"polls: {ok / args.duration:,.0f} req/s ({ok:,} ok, {errors} errors in "
              f"{args.duration:g} s; {args.clients} client process(es) x {args.connections} "
              f"connections)")
        print(f"poll latency: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms")

        completed = ids[::2]  # the even-numbered tasks were not stuck
        size, seconds = asyncio.run(download_load(base_url, completed, 8))
        print(f"downloads: {len(completed)} x {args.video_bytes:,} bytes in {seconds:.2f} s "
              f"= {size / seconds / 1e6:,.0f} MB/s")
        print("target: >= 3,000 polls/s:", "met" if ok / args.duration >= 3000 else "NOT met")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
