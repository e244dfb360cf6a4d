"""The floor octobatch is measured against: submit, poll and download with bare aiohttp.

Same work per job as the engine (POST, poll until completed, stream the MP4 to a file), same
concurrency, no journal, no hashing, no events. `--durable` adds what the engine's guarantees
need, done the plain way, for reference: the sha256 of the bytes as they arrive, an fsync,
and a rename into place. Usage:
    python benchmarks/bare_aiohttp.py --base-url URL --jobs 1000 --concurrency 64 --out DIR
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import time
from pathlib import Path

import aiofiles
import aiohttp

KEY = "sk-demo-octobatch"  # the simulator's demo key


async def one_job(session: aiohttp.ClientSession, base_url: str, i: int, out: Path,
                  poll_interval: float, durable: bool = False) -> None:
    body = {"model": "omni-fast", "prompt": f"bare job {i}", "seconds": "8",
            "aspect_ratio": "16:9"}
    async with session.post(f"{base_url}/v1/videos", json=body) as resp:
        task_id = (await resp.json())["id"]
    while True:
        await asyncio.sleep(poll_interval)
        async with session.get(f"{base_url}/v1/videos/{task_id}") as resp:
            video = await resp.json()
        if video["status"] == "completed":
            break
    if durable:
        await durable_download(session, video["video_url"], out, i)
        return
    async with session.get(video["video_url"]) as resp, aiofiles.open(out / f"{i}.mp4", "wb") as f:
        async for chunk in resp.content.iter_chunked(256 * 1024):
            await f.write(chunk)


async def durable_download(session: aiohttp.ClientSession, url: str, out: Path, i: int) -> str:
    """The download with octobatch's guarantees and nothing else; returns the sha256."""
    digest = hashlib.sha256()
    part = out / f".{i}.mp4.part"
    async with session.get(url) as resp, aiofiles.open(part, "wb") as f:
        async for chunk in resp.content.iter_chunked(256 * 1024):
            await f.write(chunk)
            digest.update(chunk)
        await f.flush()
        await asyncio.to_thread(os.fsync, f.fileno())
    await asyncio.to_thread(os.replace, part, out / f"{i}.mp4")
    return digest.hexdigest()


async def run_bare(base_url: str, jobs: int, concurrency: int, out: Path,
                   poll_interval: float, durable: bool = False) -> float:
    """Seconds to finish `jobs` jobs."""
    out.mkdir(parents=True, exist_ok=True)
    queue = list(range(jobs))
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    headers = {"Authorization": f"Bearer {KEY}"}
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            while queue:
                await one_job(session, base_url, queue.pop(), out, poll_interval, durable)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--durable", action="store_true",
                        help="also sha256, fsync and rename each video (the guarantees alone)")
    args = parser.parse_args()
    seconds = asyncio.run(run_bare(args.base_url, args.jobs, args.concurrency, args.out,
                                   args.poll_interval, args.durable))
    kind = "bare aiohttp, durable" if args.durable else "bare aiohttp"
    print(f"{kind}: {args.jobs} jobs in {seconds:.1f} s = {args.jobs / seconds:.1f} jobs/s")


if __name__ == "__main__":
    main()
