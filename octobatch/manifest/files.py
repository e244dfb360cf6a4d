"""Local files a manifest references: where they may come from, what they must contain.

A manifest is often someone else's file, so local paths are confined to the manifest's own
directory tree (after resolving symlinks) unless the user allows otherwise; and content is
checked by its magic bytes, not its name, so a mislabelled or broken file is caught before
anything is submitted.

Files are opened through octobatch.inputs, which also reads them again at submission.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from octobatch.inputs import InputFileError, open_regular, unreadable
from octobatch.jobs import LocalFile

RefForm = Literal["url", "data", "local"]
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}
_CHUNK = 1 << 20


def ref_form(value: str) -> RefForm:
    """How an image/video field value is written: public URL, data: URI or local path."""
    if value.startswith("data:"):
        return "data"
    if _SCHEME.match(value):
        if value.startswith(("http://", "https://")):
            return "url"
        raise InputFileError(
            f"unsupported URL {value.split('://', 1)[0]}://...",
            "use a public http(s) URL, a data: URI or a path relative to the manifest",
        )
    return "local"


def check_data_uri(value: str, kind: Literal["image", "video"], max_bytes: int | None) -> None:
    """Check an inline `data:` URI as a local file is checked: its base64 decodes, the media
    type it declares is one octobatch sends and matches the bytes, and it is within the limit.
    """
    header, sep, payload = value.partition(",")
    if not sep or not header.startswith(f"data:{kind}/") or not header.endswith(";base64"):
        raise InputFileError(f"a data URI here must look like data:{kind}/...;base64,...")
    declared = header.removeprefix("data:").removesuffix(";base64")
    accepted = _IMAGE_TYPES if kind == "image" else {"video/mp4": "MP4"}
    if declared not in accepted:
        raise InputFileError(f"a data URI of type {declared} cannot be sent here",
                             "use " + _either(accepted))
    if max_bytes is not None and len(payload) * 3 // 4 > max_bytes:
        raise InputFileError(f"the data URI holds more than {_megabytes(max_bytes)}",
                             _too_big_hint(kind))
    if not payload:
        raise InputFileError("the data URI holds no data",
                             "put the file's base64 text after the comma")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise InputFileError(f"the data URI is not valid base64: {_base64_fault(payload)}",
                             "encode the whole file, e.g. with `base64 -w0 FILE`") from None
    media_type = sniff(data[:16])
    if media_type != declared:
        raise InputFileError(f"the data URI says {declared} but {_looks_like(data[:16])}",
                             "fix the type after 'data:' or encode the right file")


def _base64_fault(payload: str) -> str:
    """Where base64 text goes wrong, in words."""
    for i, char in enumerate(payload):
        if not (char.isascii() and (char.isalnum() or char in "+/=")):
            return f"{char!r} at character {i + 1} of the data"
    if "=" in payload.rstrip("="):
        return f"'=' at character {payload.index('=') + 1} of the data, before its end"
    return f"the data is cut short ({len(payload)} characters, not a multiple of 4)"


def _either(choices: Iterable[str]) -> str:
    names = list(choices)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def sniff(head: bytes) -> str | None:
    """The media type the first bytes of a file announce, if it is one octobatch can send."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    return None


_OTHER_FORMATS = (
    (b"GIF8", "a GIF"),
    (b"%PDF", "a PDF"),
    (b"BM", "a BMP"),
    (b"\x1a\x45\xdf\xa3", "a WebM/Matroska file"),
)


def _looks_like(head: bytes) -> str:
    """What the first bytes of some content say it is, for a message."""
    if not head:
        return "it is empty"
    media_type = sniff(head)
    if media_type == "video/mp4":
        return "it is an MP4 video"
    if media_type in _IMAGE_TYPES:
        return f"it is a {_IMAGE_TYPES[media_type]} image"
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic):
            return f"it looks like {name}"
    return "its content is not recognised"


@dataclass(frozen=True)
class _Content:
    media_type: str | None
    size: int
    head: bytes
    sha256: str | None  # None: not hashed, because the file is over the size limit

    def looks_like(self) -> str:
        return _looks_like(self.head)


@dataclass
class FileChecker:
    """Checks and hashes local files for one manifest; each file is read once per load."""

    root: Path  # the manifest's directory, resolved
    allow_outside: bool
    _resolved: dict[str, Path] = field(default_factory=dict)
    _seen: dict[Path, _Content] = field(default_factory=dict)
    _inline: dict[tuple[str, str, int | None], tuple[str, str | None] | None] = field(
        default_factory=dict)

    @classmethod
    def for_manifest(cls, manifest: Path, allow_outside: bool) -> FileChecker:
        return cls(manifest.parent.resolve(), allow_outside)

    def check(
        self, value: str, label: str, kind: Literal["image", "video"], max_bytes: int | None
    ) -> LocalFile:
        """Check the local file `value` (written for API field `label`) and hash it."""
        path = self._resolved.get(value)
        if path is None:
            try:
                path = self._resolved[value] = (self.root / value).resolve()
            except (OSError, ValueError):  # a NUL byte, a symlink loop
                raise InputFileError(f"{value!r} is not a usable file path") from None
        if not self.allow_outside and not path.is_relative_to(self.root):
            raise InputFileError(
                f"'{value}' is outside the manifest's directory",
                "pass --allow-outside-files to read files from anywhere",
            )
        content = self._read(value, path, max_bytes)
        media_type = content.media_type
        if kind == "image" and media_type not in _IMAGE_TYPES:
            raise InputFileError(
                f"'{value}' is not a PNG, JPEG or WebP image ({content.looks_like()})"
            )
        if kind == "video" and media_type != "video/mp4":
            raise InputFileError(f"'{value}' is not an MP4 video ({content.looks_like()})")
        if content.sha256 is None or (max_bytes is not None and content.size > max_bytes):
            raise InputFileError(
                f"'{value}' is {content.size / (1 << 20):.1f} MB; "
                f"at most {_megabytes(max_bytes or 0)} allowed",
                _too_big_hint(kind),
            )
        assert media_type is not None  # both kinds checked above
        return LocalFile(label, path, content.sha256, media_type, content.size)

    def check_data(
        self, value: str, kind: Literal["image", "video"], max_bytes: int | None
    ) -> None:
        """check_data_uri, decoding each distinct URI once (a default reaches every job)."""
        key = (value, kind, max_bytes)
        if key not in self._inline:
            try:
                check_data_uri(value, kind, max_bytes)
                self._inline[key] = None
            except InputFileError as problem:
                self._inline[key] = (problem.message, problem.hint)
        found = self._inline[key]
        if found is not None:
            raise InputFileError(*found)

    def _read(self, value: str, path: Path, max_bytes: int | None) -> _Content:
        """Type, size and (within `max_bytes`) hash of the file, each file read at most once."""
        seen = self._seen.get(path)
        if seen is not None and (seen.sha256 is not None or (
                max_bytes is not None and seen.size > max_bytes)):
            return seen
        try:
            with open_regular(path) as (f, size):
                head = f.read(16)
                if max_bytes is not None and size > max_bytes:
                    # Never read what will be refused: a 1 GB file costs one stat here.
                    return _Content(sniff(head), size, head, None)
                digest = hashlib.sha256(head)
                size = len(head)
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise unreadable(exc, value) from None
        content = _Content(sniff(head), size, head, digest.hexdigest())
        self._seen[path] = content
        return content


def _too_big_hint(kind: Literal["image", "video"]) -> str:
    # A video's limit is the model's (the provider's); an image's is octobatch's own.
    return ("trim or re-encode the clip" if kind == "video"
            else "make the image smaller, or raise the limit with OCTOBATCH_MAX_IMAGE_MB")


def _megabytes(n: int) -> str:
    return f"{n / (1 << 20):g} MB"
