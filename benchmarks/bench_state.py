"""How long the event loop stalls while the state store compacts a big lockfile.

A run with N jobs changes state thousands of times; every so often the journal has outgrown
the lockfile and the store rewrites it whole (render + fsync). That rewrite runs in the
store's flush thread, from a snapshot of the immutable entries. This measures the longest gap
a ticker coroutine sees on the loop during a burst of journaled changes that forces
compactions, against a baseline in the same run that compacts on the loop (what the engine
did before, `maybe_compact` in its worker loop), in alternating rounds.

    python benchmarks/bench_state.py [--jobs N] [--rounds R] [--dir DIR]

Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from octobatch.state import LockEntry, StateStore, Status

PASSES = 16  # changes per job: enough for the journal to outgrow the lockfile a few times
BATCH = 16


async def burst(store: StateStore, jobs: int, *,
                compact_on_loop: bool) -> tuple[float, int, float]:
    """(longest loop stall in ms, compactions, seconds) over PASSES changes per job."""
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    tick = asyncio.create_task(ticker())
    before = store.compactions
    start = time.perf_counter()
    for n in range(PASSES * jobs):
        store.task_recorded(f"job{n % jobs:05}", task_id=f"video_{n}",
                            status=Status.QUEUED, attempts=1, submitted_at="2026-01-01T00:00:00Z")
        if n % BATCH == 0:  # jobs in flight share a sync (group commit)
            await store.sync()
            if compact_on_loop and store._journal_size > store._lock_size:
                store.compact()  # what the engine's maybe_compact did: all of it on the loop
    await store.sync()
    done = True
    await tick
    return worst * 1000, store.compactions - before, time.perf_counter() - start


async def one_round(directory: Path, jobs: int,
                    compact_on_loop: bool) -> tuple[float, int, float]:
    manifest = directory / f"m{time.monotonic_ns()}.yaml"
    # The baseline's store never compacts in its flush thread: its loop does it instead.
    store = StateStore.open(manifest, compact_min_bytes=1 << 40 if compact_on_loop else 64 << 10)
    for i in range(jobs):
        store.put(f"job{i:05}", LockEntry(spec_hash=f"sha256:{i:064x}", model="omni-fast",
                                          spec={"prompt": f"shot number {i}"}))
    store.compact()  # start from a big lockfile and an empty journal
    try:
        return await burst(store, jobs, compact_on_loop=compact_on_loop)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        off, on = [], []
        for r in range(args.rounds):  # alternating, so a busy machine hurts both alike
            off_ms, off_n, off_s = asyncio.run(one_round(directory, args.jobs, False))
            on_ms, on_n, on_s = asyncio.run(one_round(directory, args.jobs, True))
            off.append(off_ms)
            on.append(on_ms)
            print(f"round {r + 1}: longest loop stall {off_ms:7.1f} ms with compaction in the "
                  f"flush thread ({off_n} compactions, {off_s:.1f} s), {on_ms:7.1f} ms on the "
                  f"loop ({on_n} compactions, {on_s:.1f} s)")
        print(f"median longest stall: {statistics.median(off):.1f} ms off the loop vs "
              f"{statistics.median(on):.1f} ms on it ({args.jobs:,} jobs); "
              f"ratio {statistics.median(on) / max(statistics.median(off), 1e-9):.1f}x")


if __name__ == "__main__":
    main()
