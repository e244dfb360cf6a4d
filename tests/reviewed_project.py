"""A reviewed project on disk: a manifest, its lockfile with takes, and the takes' files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from octobatch.manifest import Manifest, load_manifest
from octobatch.state import StateStore, Status, lock_path_for

MANIFEST = """\
version: 1
defaults:
  model: omni-fast
  seconds: 4
  aspect_ratio: "16:9"
output_dir: out
jobs:
  - id: beach
    prompt: Ocean waves at golden hour
  - id: cat
    prompt: A cat chases a butterfly
  - id: dog
    prompt: A dog in the snow
  - id: never-run
    prompt: Not generated yet
"""
NOW = "2026-05-01T12:00:00Z"


def clip(job_id: str, take: int) -> bytes:
    """Distinct bytes per take, so a test can tell which file sits where."""
    return b"\x00\x00\x00\x18ftypmp42" + f"{job_id} take {take}".encode()


def build_project(directory: Path) -> Manifest:
    """`beach` and `dog` with one take each, `cat` with two (take 2 selected)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "shots.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    manifest = load_manifest(path)
    out = manifest.output_dir
    out.mkdir(parents=True)
    jobs = {job.id: job for job in manifest.jobs}
    store = StateStore.open(path)
    try:
        for job_id, takes in (("beach", 1), ("cat", 2), ("dog", 1)):
            job = jobs[job_id]
            for take in range(1, takes + 1):
                moved = {}
                if take > 1:  # the earlier take moves aside, as the engine does
                    (out / f"{job_id}.mp4").rename(out / f"{job_id}.take{take - 1}.mp4")
                    moved = {take - 1: f"out/{job_id}.take{take - 1}.mp4"}
                data = clip(job_id, take)
                (out / f"{job_id}.mp4").write_bytes(data)
                store.pending(job_id, spec_hash=job.spec_hash, model=job.model,
                              spec=dict(job.canonical), idempotency_key=f"key-{job_id}-{take}")
                store.submitting(job_id)
                store.task_recorded(job_id, task_id=f"video_{job_id}_{take}",
                                    status=Status.QUEUED, attempts=1, submitted_at=NOW)
                store.completed(job_id, video_url=f"https://cdn.invalid/{job_id}/{take}",
                                output=f"out/{job_id}.mp4", sha256=hashlib.sha256(data).hexdigest(),
                                bytes=len(data), completed_at=NOW, moved=moved)
    finally:
        store.close()
    return manifest


def lock_jobs(manifest: Manifest) -> dict[str, Any]:
    """The committed lockfile's jobs, read as a user's `git diff` would see them."""
    jobs: dict[str, Any] = json.loads(lock_path_for(manifest.path).read_text("utf-8"))["jobs"]
    return jobs
