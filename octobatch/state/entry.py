"""One job's recorded state: an immutable, validated `LockEntry`, and `LockState`, all of them.

Contract fields of each entry: spec_hash, model, status, task_id, video_url, output, sha256,
bytes, attempts, error, submitted_at, completed_at. Extra fields: `spec` (the canonical request
that was hashed, so `plan` can name changed fields), `idempotency_key`, `possible_duplicate`.
Added by issues 10 and 11 (contract): `takes` (every result the job has had; the top-level
fields describe the selected one, whose file is `<id>.mp4`), `review` (`decision`, `take`,
`at`) and `spent` (what every submission sent for the job cost, counted when it was sent).
They are written only once they hold something, so older lockfiles keep their exact bytes.

Entries are frozen: a change is a new entry (`dataclasses.replace`, which mypy checks field by
field), so a plan's steps can hold entries while the store moves on, and a snapshot of the
state for a background lockfile write is a shallow copy of one dict.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Decision = Literal["approved", "rejected"]
DECISIONS: tuple[Decision, ...] = ("approved", "rejected")


class Status(str, enum.Enum):
    PENDING = "pending"
    SUBMITTING = "submitting"  # journaled before the POST: a crash here means "maybe created"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"  # provider said so AND the checked file is on disk
    FAILED = "failed"
    UNCERTAIN = "uncertain"  # the POST may have created a task we never heard about


@dataclass(frozen=True)
class Take:
    """One result a job has had; `take` numbers them 1, 2, ... in the order they completed."""

    take: int
    task_id: str
    output: str  # relative to the lockfile's directory: `<id>.mp4` if selected
    sha256: str
    bytes: int
    spec_hash: str
    completed_at: str
    # A submission for this take may have created a second, paid task (the entry's flag when
    # the take completed). Written only when true: older lockfiles keep their bytes.
    possible_duplicate: bool = False

    def __post_init__(self) -> None:
        for name in _TAKE_FIELDS:
            value = getattr(self, name)
            kind = int if name in ("take", "bytes") else str
            if type(value) is not kind and (isinstance(value, bool) or not isinstance(value, kind)):
                raise TypeError(f"takes: {name}: expected {_NAMES[kind]}, got "
                                f"{type(value).__name__}")
        if type(self.possible_duplicate) is not bool:
            raise TypeError("takes: possible_duplicate: expected true or false, got "
                            f"{type(self.possible_duplicate).__name__}")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in _TAKE_FIELDS}
        if self.possible_duplicate:
            data["possible_duplicate"] = True
        return data

    @classmethod
    def from_json(cls, data: Any) -> Take:
        if not isinstance(data, dict):
            raise TypeError(f"takes: expected objects, got {type(data).__name__}")
        missing = [name for name in _TAKE_FIELDS if name not in data]
        if missing:
            raise ValueError(f"takes: missing {', '.join(missing)}")
        return cls(**{name: data[name] for name in _TAKE_FIELDS},
                   possible_duplicate=data.get("possible_duplicate", False))


@dataclass(frozen=True)
class Review:
    """A person's decision on a job (null: undecided), about take `take`, made `at`."""

    decision: Decision | None
    take: int | None
    at: str  # ISO 8601 UTC

    def __post_init__(self) -> None:
        if self.decision is not None and self.decision not in DECISIONS:
            raise ValueError(f"review: decision: {self.decision!r} is not one of approved, "
                             "rejected, null")
        if self.take is not None and (isinstance(self.take, bool) or not isinstance(self.take, int)):
            raise TypeError(f"review: take: expected integer or null, got {type(self.take).__name__}")
        if not isinstance(self.at, str):
            raise TypeError(f"review: at: expected string, got {type(self.at).__name__}")

    def to_json(self) -> dict[str, Any]:
        return {"decision": self.decision, "take": self.take, "at": self.at}

    @classmethod
    def from_json(cls, data: Any) -> Review:
        if not isinstance(data, dict):
            raise TypeError(f"review: expected an object, got {type(data).__name__}")
        return cls(decision=data.get("decision"), take=data.get("take"), at=data.get("at", ""))


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
    takes: tuple[Take, ...] = ()
    review: Review | None = None
    spent: float = 0.0

    def __post_init__(self) -> None:
        # An entry is valid by construction, whether it came from a file, the journal or code.
        for name in _ENTRY_FIELDS:
            check_field(name, getattr(self, name))

    def values(self) -> dict[str, Any]:
        """Field name -> value, shallow (the nested mappings are never mutated)."""
        return {name: getattr(self, name) for name in _ENTRY_FIELDS}

    def changed(self, **changes: Any) -> LockEntry:
        """`dataclasses.replace(self, **changes)`, checking only the fields that change (the
        others were checked when this entry was made): the store changes entries per event."""
        for name, value in changes.items():
            if name not in FIELD_TYPES:
                raise TypeError(f"unexpected field {name!r}")
            check_field(name, value)
        new = object.__new__(LockEntry)
        new.__dict__.update(self.__dict__, **changes)  # frozen: no __setattr__, same fields
        return new

    def to_json(self, *, copy: bool = True) -> dict[str, Any]:
        """A JSON-ready copy: the store's snapshots and journal records never alias an entry.
        `copy=False` shares the nested mappings, for a reader that only encodes them now."""
        data = {name: encode_field(name, value, copy=copy)
                for name, value in self.values().items()}
        for name in _UNTIL_SET:  # absent until they hold something: older files keep their bytes
            if not data[name]:
                del data[name]
        return data

    @property
    def selected(self) -> Take | None:
        """The take the top-level fields describe (the newest unless a review chose one)."""
        return next((t for t in self.takes if t.task_id == self.task_id
                     and t.output == self.output), None)

    @property
    def decision(self) -> Decision | None:
        """The review's decision while it is about the selected take: a newer take (a re-roll
        of a rejected one) is undecided until someone looks at it."""
        review, selected = self.review, self.selected
        if review is None or (review.take is not None and selected is not None
                              and review.take != selected.take):
            return None
        return review.decision

    def take_history(self) -> tuple[Take, ...]:
        """Every result so far, counting a completed entry from before takes were recorded."""
        if self.takes or self.status is not Status.COMPLETED:
            return self.takes
        if not (self.task_id and self.output and self.sha256 and self.bytes is not None):
            return ()
        return (Take(1, self.task_id, self.output, self.sha256, self.bytes, self.spec_hash,
                     self.completed_at or "", self.possible_duplicate),)

    @classmethod
    def from_json(cls, data: Any) -> LockEntry:
        """A validated entry; unknown keys are ignored so older versions can read newer files."""
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, got {type(data).__name__}")
        for name in _REQUIRED:
            if name not in data:
                raise ValueError(f"missing {name}")
        values = {k: decode_field(k, v) for k, v in data.items() if k in FIELD_TYPES}
        return cls(**values)


# Field names, in order, looked up once: `dataclasses.fields()` costs more than the checks, and
# the store builds several entries per job.
_TAKE_FIELDS = tuple(f.name for f in fields(Take) if f.name != "possible_duplicate")  # required
_ENTRY_FIELDS = tuple(f.name for f in fields(LockEntry))


@dataclass
class LockState:
    """Every job of one manifest. Owned and changed only by the store (or a reader's own copy)."""

    manifest: str  # manifest file name, relative to the lockfile's directory
    jobs: dict[str, LockEntry] = field(default_factory=dict)

    @property
    def spent(self) -> float:
        """The manifest's recorded spend: every submission of every job it still records."""
        return round(sum(entry.spent for entry in self.jobs.values()), 9)


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
    "takes": (tuple,),
    "review": (Review, type(None)),
    "spent": (int, float),
}
# The same as exact types, which surely pass: `type(True)` is bool, never int, and a dict is
# the usual Mapping.
_EXACT_TYPES: dict[str, frozenset[type]] = {
    name: frozenset(types) - {Mapping} | ({dict} if Mapping in types else set())
    for name, types in FIELD_TYPES.items()
}
_UNTIL_SET = ("takes", "review", "spent")
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
    if type(value) in _EXACT_TYPES.get(name, ()):
        return  # the usual case, without walking abstract types
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
    if name == "takes":
        if not isinstance(value, list):
            raise TypeError(f"takes: expected a list, got {type(value).__name__}")
        return tuple(Take.from_json(t) for t in value)
    if name == "review" and value is not None:
        return Review.from_json(value)
    check_field(name, value)
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})


def encode_field(name: str, value: Any, *, copy: bool = True) -> Any:
    """The JSON value of entry field `name` (a copy for the nested ones, unless not `copy`)."""
    if type(value) in _SCALARS:
        return value  # most fields: no abstract type to walk
    if isinstance(value, Status):
        return value.value
    if isinstance(value, Review):
        return value.to_json()
    if name == "takes":
        return [t.to_json() for t in value]
    if isinstance(value, Mapping) and (copy or type(value) is not dict):
        return _copy_json(value)
    return value


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(_NAMES.get(t, t.__name__) for t in types)


_NAMES: dict[type, str] = {str: "string", int: "integer", float: "number", Mapping: "object",
                           bool: "boolean", type(None): "null", Status: "string",
                           tuple: "list", Review: "object"}


def _copy_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_json(v) for v in value]
    return value
