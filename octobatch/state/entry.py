"""One job's recorded state: an immutable, validated `LockEntry`, and `LockState`, all of them.

Contract fields of each entry: spec_hash, model, status, task_id, video_url, output, sha256,
bytes, attempts, error, submitted_at, completed_at. Extra fields: `spec` (the canonical request
that was hashed, so `plan` can name changed fields), `idempotency_key`, `possible_duplicate`.

Entries are frozen: a change is a new entry (`dataclasses.replace`, which mypy checks field by
field), so a plan's steps can hold entries while the store moves on, and a snapshot of the
state for a background lockfile write is a shallow copy of one dict.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class Status(str, enum.Enum):
    PENDING = "pending"
    SUBMITTING = "submitting"  # journaled before the POST: a crash here means "maybe created"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"  # provider said so AND the checked file is on disk
    FAILED = "failed"
    UNCERTAIN = "uncertain"  # the POST may have created a task we never heard about


@dataclass(frozen=True)
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
    error: Mapping[str, str] | None = None  # {"code", "message"}
    submitted_at: str | None = None  # ISO 8601 UTC
    completed_at: str | None = None
    spec: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    possible_duplicate: bool = False

    def __post_init__(self) -> None:
        # An entry is valid by construction, whether it came from a file, the journal or code.
        for name, value in self.values().items():
            check_field(name, value)

    def values(self) -> dict[str, Any]:
        """Field name -> value, shallow (the nested mappings are never mutated)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready copy: the store's snapshots and journal records never alias an entry."""
        data = self.values()
        data["status"] = self.status.value
        data["spec"] = _copy_json(self.spec)
        data["error"] = None if self.error is None else dict(self.error)
        return data

    @classmethod
    def from_json(cls, data: Any) -> LockEntry:
        """A validated entry; unknown keys are ignored so older versions can read newer files."""
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, got {type(data).__name__}")
        for name in _REQUIRED:
            if name not in data:
                raise ValueError(f"missing {name}")
        values = {k: v for k, v in data.items() if k in FIELD_TYPES}
        if "status" in values:
            values["status"] = parse_status(values["status"])
        return cls(**values)


@dataclass
class LockState:
    """Every job of one manifest. Owned and changed only by the store (or a reader's own copy)."""

    manifest: str  # manifest file name, relative to the lockfile's directory
    jobs: dict[str, LockEntry] = field(default_factory=dict)


# --- validation ---------------------------------------------------------------------------

_STR = (str,)
_OPT_STR = (str, type(None))
# bool is a subclass of int: checked separately so `"bytes": true` is rejected.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "spec_hash": _STR,
    "model": _STR,
    "status": (Status,),
    "task_id": _OPT_STR,
    "video_url": _OPT_STR,
    "output": _OPT_STR,
    "sha256": _OPT_STR,
    "bytes": (int, type(None)),
    "attempts": (int,),
    "error": (Mapping, type(None)),
    "submitted_at": _OPT_STR,
    "completed_at": _OPT_STR,
    "spec": (Mapping,),
    "idempotency_key": _OPT_STR,
    "possible_duplicate": (bool,),
}
_REQUIRED = ("spec_hash", "model")
_STATUS_VALUES = {s.value for s in Status}


def parse_status(value: Any) -> Status:
    if isinstance(value, Status):
        return value
    if not isinstance(value, str):
        raise TypeError(f"status: expected string, got {type(value).__name__}")
    if value not in _STATUS_VALUES:
        raise ValueError(f"status: {value!r} is not one of {', '.join(sorted(_STATUS_VALUES))}")
    return Status(value)


def check_field(name: str, value: Any) -> None:
    """Raise ValueError or TypeError unless `value` is a valid value for entry field `name`."""
    types = FIELD_TYPES.get(name)
    if types is None:
        raise ValueError(f"unknown field {name!r}")
    if isinstance(value, bool) and bool not in types:
        raise ValueError(f"{name}: expected {_type_names(types)}, got a boolean")
    if not isinstance(value, types):
        raise TypeError(f"{name}: expected {_type_names(types)}, got {type(value).__name__}")


def decode_field(name: str, value: Any) -> Any:
    """A JSON value for field `name` as the entry holds it (status words become `Status`)."""
    if name == "status":
        return parse_status(value)
    check_field(name, value)
    return value


def encode_field(name: str, value: Any) -> Any:
    """The JSON value of entry field `name` (a copy for the nested ones)."""
    if isinstance(value, Status):
        return value.value
    if isinstance(value, Mapping):
        return _copy_json(value)
    return value


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", Mapping: "object", bool: "boolean",
             type(None): "null", Status: "string"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _copy_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_json(v) for v in value]
    return value
