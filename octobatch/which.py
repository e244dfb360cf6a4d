"""Which manifest, job and take produced a video: found by the file's sha256 in the lockfiles.

A video travels (renamed, copied into an edit, sent to a client); its bytes do not change, and
every lockfile records the sha256 of every take it downloaded. So the search hashes the file
once, then looks through the lockfiles (and their journals) under a folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from octobatch.errors import OctobatchError, UsageError
from octobatch.state import LockEntry, journal_path_for, load_state

LOCK_SUFFIX = ".lock.json"
# Folders that never hold a project's lockfiles but can be huge.
_SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox",
              ".mypy_cache", ".ruff_cache", ".pytest_cache"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Origin:
    """One recorded result whose file has the searched sha256."""

    manifest: str  # path as found under the searched folder
    lockfile: str
    job: str
    take: int | None  # None: a lockfile from before takes were numbered
    selected: bool  # the take the job's top-level fields (and `<id>.mp4`) describe
    task_id: str | None
    spec_hash: str
    model: str
    prompt: str | None
    output: str | None  # where the lockfile says the file is, relative to the lockfile
    completed_at: str | None
    decision: str | None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Search:
    sha256: str
    origins: list[Origin]
    unreadable: list[str]  # lockfiles that could not be read, with why


def sha256_of(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            digest = hashlib.sha256()
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder; give the video file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    return digest.hexdigest()


def which(video: Path, search_dir: Path) -> Search:
    if not search_dir.is_dir():
        raise UsageError(f"--in {search_dir}: not a folder")
    digest = sha256_of(video)
    origins: list[Origin] = []
    unreadable: list[str] = []
    for lock_path in lockfiles(search_dir):
        if not _mentions(lock_path, digest):
            continue  # cheap: most lockfiles never saw this file
        try:
            origins.extend(_origins(lock_path, digest))
        except (OctobatchError, ValueError, OSError) as exc:
            unreadable.append(f"{lock_path}: {exc}")
    return Search(sha256=digest, origins=origins, unreadable=unreadable)


def lockfiles(root: Path) -> Iterator[Path]:
    """Every `*.lock.json` under `root`, in a stable order; symlinked folders are not followed."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(LOCK_SUFFIX):
                yield Path(folder) / name


def _mentions(lock_path: Path, digest: str) -> bool:
    needle = digest.encode()
    for path in (lock_path, journal_path_for(lock_path)):
        try:
            if needle in path.read_bytes():
                return True
        except FileNotFoundError:
            continue
        except OSError:
            return True  # let the real read say what is wrong
    return False


def _origins(lock_path: Path, digest: str) -> Iterator[Origin]:
    manifest_name = _manifest_name(lock_path)
    manifest = lock_path.with_name(manifest_name)
    state = load_state(manifest)
    for job_id, entry in sorted(state.jobs.items()):
        yield from _entry_origins(manifest, lock_path, job_id, entry, digest)


def _manifest_name(lock_path: Path) -> str:
    """The manifest the lockfile belongs to, as it records it (`spring.yaml` or `.yml`)."""
    try:
        recorded = json.loads(lock_path.read_bytes()).get("manifest")
    except (ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, str) and recorded and "/" not in recorded:
        return recorded
    return lock_path.name.removesuffix(LOCK_SUFFIX) + ".yaml"


def _entry_origins(manifest: Path, lock_path: Path, job_id: str, entry: LockEntry,
                   digest: str) -> Iterator[Origin]:
    selected = entry.selected
    prompt = entry.spec.get("prompt")

    def origin(take: int | None, is_selected: bool, task_id: str | None, spec_hash: str,
               output: str | None, completed_at: str | None) -> Origin:
        return Origin(manifest=str(manifest), lockfile=str(lock_path), job=job_id, take=take,
                      selected=is_selected, task_id=task_id, spec_hash=spec_hash,
                      model=entry.model, prompt=prompt if isinstance(prompt, str) else None,
                      output=output, completed_at=completed_at,
                      decision=entry.review.decision if entry.review else None)

    takes = [t for t in entry.take_history() if t.sha256 == digest]
    for take in takes:
        yield origin(take.take, take == selected, take.task_id, take.spec_hash, take.output,
                     take.completed_at)
    if not takes and entry.sha256 == digest:
        yield origin(None, True, entry.task_id, entry.spec_hash, entry.output,
                     entry.completed_at)


def render(video: Path, search_dir: Path, result: Search) -> str:
    """What `octobatch which` prints."""
    if not result.origins:
        return (f"{video}: no lockfile under {search_dir} records a video with sha256 "
                f"{result.sha256}; search another folder with --in DIR\n")
    lines = []
    for origin in result.origins:
        take = "" if origin.take is None else f", take {origin.take}"
        if origin.take is not None:
            take += " (selected)" if origin.selected else " (not selected)"
        lines.append(f"{video}: {origin.manifest}, job '{origin.job}'{take}")
        rows = [("task id", origin.task_id), ("spec hash", origin.spec_hash),
                ("model", origin.model), ("prompt", origin.prompt),
                ("recorded as", origin.output), ("completed", origin.completed_at),
                ("decision", origin.decision)]
        lines += [f"  {name + ':':<12} {value}" for name, value in rows if value is not None]
    return "\n".join(lines) + "\n"
