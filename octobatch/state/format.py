"""The lockfile's bytes: render and parse `name.lock.json`, versioned, with upgrades on read.

Shape (contract): `{"version": 1, "manifest": "name.yaml", "jobs": {"<job id>": {...}}}`,
sorted keys, two-space indentation, non-ASCII kept readable, one trailing newline, so the same
state always gives the same bytes and a git diff shows only real changes.

A future format is one function: bump `LOCK_VERSION` and add to `UPGRADES` the function that
turns a document of the previous version into the next one. Reading applies every upgrade from
the file's version on, so old lockfiles keep working; the next write saves the new version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring  # the C string encoder, ensure_ascii=False
from typing import Any

from octobatch.state.entry import LockEntry, LockState

LOCK_VERSION = 1

Document = dict[str, Any]
# version n -> the function that upgrades a version-n document to version n + 1.
UPGRADES: dict[int, Callable[[Document], Document]] = {}


# What a fix for each kind of unreadable lockfile is (the message says what is wrong first).
RESTORE = "restore it from git (git checkout -- <file>) or move it away to start fresh"
UPGRADE = ("upgrade octobatch (pip install --upgrade octobatch) to read it; do not move it "
           "away: it records tasks already paid for")
RESOLVE = ("resolve the conflict first: keep the entries of both sides, and for a job on both "
           "sides the one that got further (see docs/git.md), then run `octobatch plan`")
_CONFLICT_MARKER = re.compile(rb"^(<{7}|={7}|>{7})(?: |$)", re.MULTILINE)


class FormatError(ValueError):
    """The bytes are not a lockfile this version can read: `headline` and the message say
    what is wrong, `advice` what to do."""

    def __init__(self, problem: str, advice: str = RESTORE,
                 headline: str = "not a valid octobatch lockfile") -> None:
        super().__init__(problem)
        self.advice = advice
        self.headline = headline


# job id -> (the entry, its rendered lines): kept between renders by the state store.
RenderCache = dict[str, tuple[LockEntry, str]]


def render_lockfile(state: LockState, cache: RenderCache | None = None) -> bytes:
    """The exact bytes of a lockfile: sorted keys, fixed indentation, trailing newline.

    The same bytes as `json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False)`, but
    encoded one entry at a time: the store renders in a worker thread, and one long encoding
    of 10,000 entries would hold the GIL, and so the event loop, for its whole length.
    With a `cache` (one renderer at a time), an entry already rendered is not rendered again:
    entries are immutable, so the same object means the same text, and a compaction during a
    run costs the entries changed since the last one, not all of them.
    """
    parts = []
    for job_id in sorted(state.jobs):
        entry = state.jobs[job_id]
        cached = cache.get(job_id) if cache is not None else None
        if cached is not None and cached[0] is entry:
            parts.append(cached[1])
            continue
        # Not copied: entries are immutable, and this only encodes them.
        parts.append(f"    {_dumps(job_id)}: {_dumps(entry.to_json(copy=False), '    ')}")
        if cache is not None:
            cache[job_id] = (entry, parts[-1])
    if cache is not None and len(cache) > len(state.jobs):
        for job_id in [j for j in cache if j not in state.jobs]:
            del cache[job_id]  # pruned jobs
    jobs = "{\n" + ",\n".join(parts) + "\n  }" if parts else "{}"
    text = (f'{{\n  "jobs": {jobs},\n  "manifest": {_dumps(state.manifest)},\n'
            f'  "version": {LOCK_VERSION}\n}}\n')
    return text.encode()


def _dumps(value: Any, margin: str = "") -> str:
    """`json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)` with every line after
    the first indented by `margin`. The json module indents in pure Python; this does the same
    in about half the time (measured on lockfile entries), leaving strings to its C encoder and
    anything unusual (a key that is not a string, a subclass) to json.dumps itself."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = margin + "  "
        try:
            keys = sorted(value)
        except TypeError:
            return _json_dumps(value, margin)  # which says what is wrong with the keys
        items = []
        for key in keys:
            if type(key) is not str:
                return _json_dumps(value, margin)
            items.append(f"{encode_basestring(key)}: {_dumps(value[key], inner)}")
        return "{\n" + inner + (",\n" + inner).join(items) + "\n" + margin + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = margin + "  "
        return ("[\n" + inner + (",\n" + inner).join([_dumps(v, inner) for v in value])
                + "\n" + margin + "]")
    if value is None or value is True or value is False:
        return _CONSTANTS[value]
    if kind is int:
        return int.__repr__(value)
    if kind is float and value == value and value not in (_INF, -_INF):
        return float.__repr__(value)
    return _json_dumps(value, margin)


_CONSTANTS = {None: "null", True: "true", False: "false"}
_INF = float("inf")


def _json_dumps(value: object, margin: str) -> str:
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)
    return text.replace("\n", "\n" + margin)  # strings are escaped: no raw newline in them


def parse_lockfile(text: str | bytes, manifest_name: str) -> LockState:
    """The state a lockfile holds; raise FormatError naming what is wrong."""
    data_bytes = text.encode() if isinstance(text, str) else text
    if marker := _CONFLICT_MARKER.search(data_bytes):
        line = data_bytes.count(b"\n", 0, marker.start()) + 1
        raise FormatError(f"line {line} starts with {marker.group(1).decode()}", RESOLVE,
                          "has unresolved git merge-conflict markers")
    try:
        data = upgrade(json.loads(text))
        manifest = data.get("manifest", manifest_name)
        if not isinstance(manifest, str):
            raise TypeError("manifest: expected a string")
        raw_jobs = data.get("jobs", {})
        if not isinstance(raw_jobs, dict):
            raise TypeError("jobs: expected an object")
        jobs: dict[str, LockEntry] = {}
        for job_id, raw in raw_jobs.items():
            try:
                jobs[job_id] = LockEntry.from_json(raw)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"job {job_id!r}: {exc}") from None
    except FormatError:
        raise
    except (ValueError, TypeError) as exc:  # JSON and UTF-8 decoding errors are ValueErrors
        raise FormatError(str(exc)) from None
    return LockState(manifest=manifest, jobs=jobs)


def upgrade(data: Any) -> Document:
    """`data` as a current-version document, upgraded step by step from its own version."""
    if not isinstance(data, dict):
        raise TypeError("expected a JSON object at the top level")
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        while version < LOCK_VERSION and version in UPGRADES:
            data = UPGRADES[version](data)
            version += 1
            data["version"] = version
    if isinstance(version, int) and not isinstance(version, bool) and version > LOCK_VERSION:
        raise FormatError(f"lockfile version {version}; this octobatch reads up to version "
                          f"{LOCK_VERSION}", UPGRADE, "written by a newer octobatch")
    if version != LOCK_VERSION:
        raise ValueError(f"unsupported version {data.get('version')!r}, expected {LOCK_VERSION}")
    return data
