"""The typed records that flow between the stages: manifest -> JobSpec -> ApiRequest.

These are the contracts between the modules (manifest, models, plan, engine, report), so they
stay small, immutable and free of I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Position:
    """Where something was written: file as given by the user, 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class LocalFile:
    """A local file a job uploads, already checked (exists, inside the tree, right format).

    `field` is the API field it feeds, with an index for list fields (`images[2]`).
    """

    field: str
    path: Path  # absolute, resolved
    sha256: str
    media_type: str  # "image/png", "image/jpeg", "image/webp", "video/mp4"
    size: int


@dataclass(frozen=True)
class JobSpec:
    """One fully expanded, validated job: everything needed to send it and to recognise it.

    `fields` are the API request fields (model excluded) after defaults and matrix expansion,
    exactly as they will be sent, except that local file references are kept as the manifest
    wrote them (relative path strings) and are listed in `files`. `spec_hash` covers model,
    fields and the content hash of every local file, nothing else.
    """

    id: str
    model: str
    fields: Mapping[str, Any]
    files: tuple[LocalFile, ...]
    spec_hash: str
    source: Position
    # The canonical, JSON-safe form that was hashed; local files appear as "sha256:<hex>"
    # references. Stored in the lockfile so `plan` can name the fields that changed.
    canonical: Mapping[str, Any] = field(default_factory=dict)
    # `takes: N`: how many independent generations of this spec the job asks for. Not part of
    # the spec hash: raising it asks for more takes of the same video, not a different one.
    takes: int = 1
    # The matrix (or rows) values that made this job, by name, and the manifest entry that
    # made it ("jobs.3"): what tells an entry's variants apart. Not hashed: the fields are.
    variables: Mapping[str, Any] = field(default_factory=dict)
    entry: str = ""
    seconds_field: str = "seconds"  # the model's field for the video's length (dotted path)

    @property
    def prompt(self) -> str:
        return str(self.fields.get("prompt", ""))

    @property
    def seconds(self) -> int | None:
        """The video's length in seconds, if the job says (None: unknown, e.g. -1 "auto")."""
        value: Any = self.fields
        for key in self.seconds_field.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        try:
            seconds = int(value) if value is not None and not isinstance(value, bool) else None
        except (TypeError, ValueError):
            return None
        return seconds if seconds is not None and seconds >= 0 else None


@dataclass(frozen=True)
class FilePart:
    """One multipart file part, its content already read (and checked against the spec)."""

    field: str
    data: bytes
    filename: str
    content_type: str


@dataclass(frozen=True)
class ApiRequest:
    """The body of `POST /v1/videos` for one job, built from the model's declaration.

    Built right before submission (data URIs of local files can be large), by reading each
    local file once through `manifest.files.read_input`.
    """

    transport: Literal["json", "multipart"]
    json: Mapping[str, Any] | None = None  # the whole JSON body, model included
    form: Mapping[str, str] = field(default_factory=dict)  # multipart text fields, model included
    files: tuple[FilePart, ...] = ()
