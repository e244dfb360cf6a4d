"""Local files a manifest references: where they may come from, what they must contain.

A manifest is often someone else's file, so local paths are confined to the manifest's own
directory tree (after resolving symlinks) unless the user allows otherwise; and content is
checked by its magic bytes, not its name, so a mislabelled or broken file is caught before
anything is submitted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from octobatch.jobs import LocalFile

RefForm = Literal["url", "data", "local"]
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}
_CHUNK = 1 << 20


class FileProblem(Exception):
    """A reference that cannot be used; the message names the value and says what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def ref_form(value: str) -> RefForm:
    """How an image/video field value is written: public URL, data: URI or local path."""
    if value.startswith("data:"):
        return "data"
    if _SCHEME.match(value):
        if value.startswith(("http://", "https://")):
            return "url"
        raise FileProblem(
            f"unsupported URL {value.split('://', 1)[0]}://...",
            "use a public http(s) URL, a data: URI or a path relative to the manifest",
        )
    return "local"


def check_data_uri(value: str, kind: Literal["image", "video"], max_bytes: int | None) -> None:
    header, sep, payload = value.partition(",")
    if not sep or not header.startswith(f"data:{kind}/") or not header.endswith(";base64"):
        raise FileProblem(f"a data URI here must look like data:{kind}/...;base64,...")
    if max_bytes is not None and len(payload) * 3 // 4 > max_bytes:
        raise FileProblem(f"the data URI holds more than {_megabytes(max_bytes)}")


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


@dataclass(frozen=True)
class _Content:
    sha256: str
    media_type: str | None
    size: int
    head: bytes

    def looks_like(self) -> str:
        if not self.head:
            return "it is empty"
        if self.media_type == "video/mp4":
            return "it is an MP4 video"
        if self.media_type in _IMAGE_TYPES:
            return f"it is a {_IMAGE_TYPES[self.media_type]} image"
        for magic, name in _OTHER_FORMATS:
            if self.head.startswith(magic):
                return f"it looks like {name}"
        return "its content is not recognised"


@dataclass
class FileChecker:
    """Checks and hashes local files for one manifest; each file is read once per load."""

    root: Path  # the manifest's directory, resolved
    allow_outside: bool
    _resolved: dict[str, Path] = field(default_factory=dict)
    _seen: dict[Path, _Content] = field(default_factory=dict)

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
                raise FileProblem(f"{value!r} is not a usable file path") from None
        if not self.allow_outside and not path.is_relative_to(self.root):
            raise FileProblem(
                f"'{value}' is outside the manifest's directory",
                "pass --allow-outside-files to read files from anywhere",
            )
        content = self._read(value, path)
        media_type = content.media_type
        if kind == "image" and media_type not in _IMAGE_TYPES:
            raise FileProblem(
                f"'{value}' is not a PNG, JPEG or WebP image ({content.looks_like()})"
            )
        if kind == "video" and media_type != "video/mp4":
            raise FileProblem(f"'{value}' is not an MP4 video ({content.looks_like()})")
        if max_bytes is not None and content.size > max_bytes:
            raise FileProblem(
                f"'{value}' is {content.size / (1 << 20):.1f} MB; "
                f"at most {_megabytes(max_bytes)} allowed",
                "trim or re-encode the clip",
            )
        assert media_type is not None  # both kinds checked above
        return LocalFile(label, path, content.sha256, media_type, content.size)

    def _read(self, value: str, path: Path) -> _Content:
        if path in self._seen:
            return self._seen[path]
        digest = hashlib.sha256()
        try:
            if path.exists() and not path.is_dir() and not path.is_file():
                # A FIFO or a device (/dev/zero) would block or never end.
                raise FileProblem(f"'{value}' is not a regular file")
            with path.open("rb") as f:
                head = f.read(16)
                digest.update(head)
                size = len(head)
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            raise FileProblem(
                f"no such file '{value}'", "paths are relative to the manifest's directory"
            ) from None
        except IsADirectoryError:
            raise FileProblem(f"'{value}' is a directory, not a file") from None
        except OSError as exc:
            raise FileProblem(f"cannot read '{value}': {exc.strerror or exc}") from None
        content = _Content(digest.hexdigest(), sniff(head), size, head)
        self._seen[path] = content
        return content


def _megabytes(n: int) -> str:
    return f"{n / (1 << 20):g} MB"
