"""Shared helpers for the engine, fault and run-command tests: manifests on disk, one run."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from octobatch.download import DownloadLimits
from octobatch.engine import EngineOptions, RunResult
from octobatch.manifest import load_manifest
from octobatch.progress import Event
from octobatch.retry import RetryPolicy
from octobatch.session import RunSession
from octobatch.simulator import DEMO_KEY, Simulator
from octobatch.state import LockState, load_state

# Tiny delays so fault tests never wait on the wall clock; bounds as in production.
FAST = RetryPolicy(base=0.001, cap=0.01, retry_after_cap=0.05)
POLL = 0.01
OMNI_DEFAULTS = {"model": "omni-fast", "seconds": 8, "aspect_ratio": "16:9"}


def png_bytes() -> bytes:
    """A valid 1x1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00")) + chunk(b"IEND", b""))


def write_manifest(directory: Path, jobs: list[dict[str, Any]], *,
                   defaults: dict[str, Any] | None = None, name: str = "batch.yaml") -> Path:
    path = directory / name
    doc = {"version": 1, "defaults": OMNI_DEFAULTS if defaults is None else defaults,
           "output_dir": "out", "jobs": jobs}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def prompts_jobs(n: int, prefix: str = "clip") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "prompt": f"{prefix} number {i}"} for i in range(n)]


@dataclass
class Outcome:
    result: RunResult
    events: list[Event]
    state: LockState  # as the next run would load it
    lock_dir: Path

    def named(self, name: str) -> list[Any]:
        """The events called `name` (typed Any: tests read each kind's own fields)."""
        return [e for e in self.events if e.name == name]


async def run_engine(sim: Simulator, manifest_path: Path, *, retry_failed: bool = False,
                     prune: bool = False, timeout: float | None = None, concurrency: int = 4,
                     policy: RetryPolicy = FAST, api_key: str = DEMO_KEY,
                     download: DownloadLimits | None = None,
                     deadline: float | None = None) -> Outcome:
    manifest = load_manifest(manifest_path)
    events: list[Event] = []
    options = EngineOptions(output_dir=manifest.output_dir, concurrency=concurrency,
                            poll_interval=POLL, timeout=timeout, prune=prune, retry=policy,
                            download=download or DownloadLimits(), deadline=deadline)
    async with RunSession(manifest, sim.base_url, api_key, options, events.append) as session:
        result = await session.run(session.plan(retry_failed=retry_failed))
    return Outcome(result, events, load_state(manifest.path), manifest_path.parent)


def submits(sim: Simulator) -> list[Any]:
    return [r for r in sim.requests if r.kind == "submit"]
