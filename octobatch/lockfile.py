"""The lockfile (`name.lock.json`, committed) and its append-only journal.

Contract fields of each job entry: spec_hash, model, status, task_id, video_url, output,
sha256, bytes, attempts, error, submitted_at, completed_at. Extra fields: `spec` (the canonical
request that was hashed, so `plan` can name changed fields), `idempotency_key`,
`possible_duplicate`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from octobatch.errors import StateError

LOCK_VERSION = 1


class Status(str, enum.Enum):
    PENDING = "pending"
    SUBMITTING = "submitting"  # journaled before the POST: a crash here means "maybe created"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"  # provider said so AND the checked file is on disk
    FAILED = "failed"
    UNCERTAIN = "uncertain"  # the POST may have created a task we never heard about


@dataclass
class LockEntry:
    spec_hash: str
    model: str
    status: Status = Status.PENDING
    task_id: str | None = None
    video_url: str | None = None
    output: str | None = None  # MP4 path relative to the lockfile's directory
    sha256: str | None = None
    bytes: int | None = None
    attempts: int = 0
    error: dict[str, str] | None = None  # {"code", "message"}
    submitted_at: str | None = None  # ISO 8601 UTC
    completed_at: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    possible_duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockEntry:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = Status(values.get("status", "pending"))
        return cls(**values)


@dataclass
class LockState:
    manifest: str  # manifest file name, relative to the lockfile's directory
    jobs: dict[str, LockEntry] = field(default_factory=dict)


def lock_path_for(manifest: Path) -> Path:
    """`path/name.yaml` -> `path/name.lock.json`."""
    return manifest.with_name(manifest.stem + ".lock.json")


def journal_path_for(lock_path: Path) -> Path:
    """`name.lock.json` -> `name.lock.journal` (JSON lines, not committed)."""
    return lock_path.with_name(lock_path.name.removesuffix(".json") + ".journal")


def read_lockfile(lock_path: Path, manifest_name: str) -> LockState:
    """Read the committed lockfile; a missing one is an empty state."""
    try:
        text = lock_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LockState(manifest=manifest_name)
    except OSError as exc:
        raise StateError(f"{lock_path}: cannot read lockfile: {exc.strerror}") from None
    try:
        data = json.loads(text)
        if data.get("version") != LOCK_VERSION:
            raise ValueError(f"unsupported version {data.get('version')!r}")
        jobs = {job_id: LockEntry.from_json(e) for job_id, e in data.get("jobs", {}).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise StateError(
            f"{lock_path}: not a valid octobatch lockfile ({exc}); "
            "restore it from git or move it away to start fresh"
        ) from None
    return LockState(manifest=data.get("manifest", manifest_name), jobs=jobs)


def load_state(manifest: Path) -> LockState:
    """The current state of a manifest's jobs: the lockfile with the journal replayed."""
    # TODO(engine): replay the journal on top of the lockfile.
    return read_lockfile(lock_path_for(manifest), manifest.name)
