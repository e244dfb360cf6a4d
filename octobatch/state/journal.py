"""The journal's records: one JSON line per state change, replayed over the lockfile.

Records (sorted keys, compact separators):
    {"entry": {...}, "job": "cat", "op": "put"}          the whole entry
    {"job": "cat", "op": "update", "set": {...}}        the fields that changed, new values
    {"job": "cat", "op": "remove"}

Records set absolute values, never increments, so replaying a record twice (a crash between
replacing the lockfile and emptying the journal) gives the same state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from octobatch.errors import StateError
from octobatch.state.entry import LockEntry, LockState, decode_field, encode_field

# Built once: json.dumps with options builds a new encoder for every call.
_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def encode(record: dict[str, Any]) -> bytes:
    return (_ENCODER.encode(record) + "\n").encode()


def put_record(job_id: str, entry: LockEntry) -> dict[str, Any]:
    return {"op": "put", "job": job_id, "entry": entry.to_json()}


def update_record(job_id: str, old: LockEntry, new: LockEntry,
                  names: Iterable[str] | None = None) -> dict[str, Any] | None:
    """The record that turns `old` into `new`, or None if they are equal; `names`: the only
    fields that may differ (the others are not compared)."""
    compared = sorted(names) if names is not None else new.values()
    changes = {name: encode_field(name, getattr(new, name)) for name in compared
               if getattr(old, name) != getattr(new, name)}
    return {"op": "update", "job": job_id, "set": changes} if changes else None


def remove_record(job_id: str) -> dict[str, Any]:
    return {"op": "remove", "job": job_id}


def apply(state: LockState, record: Any) -> None:
    """Apply one record; raise ValueError or TypeError if it is not a valid record."""
    if not isinstance(record, dict) or not isinstance(record.get("job"), str):
        raise TypeError("expected an object with a string 'job'")
    op, job_id = record.get("op"), record["job"]
    if op == "put":
        state.jobs[job_id] = LockEntry.from_json(record.get("entry"))
    elif op == "update":
        changes = record.get("set")
        if not isinstance(changes, dict):
            raise TypeError("update: expected an object 'set'")
        decoded = {name: decode_field(name, value) for name, value in changes.items()}
        entry = state.jobs.get(job_id)
        # Absent only when a crash replays records the lockfile already holds, and a later
        # record of the same replay removes the job again: nothing to apply.
        if entry is not None:
            state.jobs[job_id] = replace(entry, **decoded)
    elif op == "remove":
        state.jobs.pop(job_id, None)
    else:
        raise ValueError(f"unknown op {op!r}")


def replay(state: LockState, data: bytes, journal_name: str) -> int:
    """Apply every complete line of `data` to `state`; return the length of the good prefix.

    Only newline-terminated lines count: a crash mid-append leaves a torn last line, which is
    dropped (its sync never returned). A bad line anywhere else is corruption.
    """
    good = data.rfind(b"\n") + 1
    for number, line in enumerate(data[:good].split(b"\n")[:-1], start=1):
        try:
            apply(state, json.loads(line))
        except (ValueError, TypeError) as exc:
            raise StateError(
                f"{journal_name}:{number}: corrupt journal record ({exc}); the lockfile "
                "beside it is intact: move the journal away to fall back to the lockfile "
                "(changes recorded since the last compaction are lost; check `octobatch status`)"
            ) from None
    return good
