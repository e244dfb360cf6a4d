"""HTTP byte ranges as an object store serves them: `Range`, `If-Range`, validators.

Only single ranges are honoured (`bytes=N-`, `bytes=N-M`, `bytes=-N`); anything else is
answered with the whole file, which RFC 9110 allows a server to do.
"""

from __future__ import annotations

import hashlib
from email.utils import formatdate


class Unsatisfiable(Exception):
    """The range starts at or beyond the end of the file: 416."""


def validators(task_id: str, version: int, modified: int) -> tuple[str, str]:
    """(ETag, Last-Modified) of one version of a task's file."""
    tag = hashlib.sha1(f"{task_id}\0{version}".encode()).hexdigest()[:20]
    return f'"{tag}"', formatdate(modified, usegmt=True)


def requested_range(range_header: str | None, if_range: str | None, size: int, etag: str,
                    last_modified: str) -> tuple[int, int] | None:
    """(start, end exclusive) to serve as 206, or None for the whole file as 200.

    `If-Range` that names another version (a different ETag or date) means "the whole file":
    the client's partial copy is of an object that no longer exists.
    """
    if not range_header:
        return None
    if if_range is not None and if_range.strip() not in (etag, last_modified):
        return None
    unit, _, spec = range_header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:  # the last N bytes
            n = int(last)
            if n <= 0:
                raise Unsatisfiable
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size:
        raise Unsatisfiable
    if start < 0 or end <= start:
        return None
    return start, min(end, size)
