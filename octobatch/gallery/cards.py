"""What the gallery shows about each job, gathered from the manifest and the lockfile.

Pure data, no HTML: the static page and the review server render the same cards.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octobatch.state import LockEntry, LockState, Status

if TYPE_CHECKING:
    from octobatch.jobs import JobSpec

# The summary and the status filter group the engine's in-flight states: a reader wants
# "still going", not which step of the submit/poll cycle each job is in.
GROUPS: Mapping[Status, str] = {
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.SUBMITTING: "running",
    Status.QUEUED: "running",
    Status.RUNNING: "running",
    Status.PENDING: "pending",
    Status.UNCERTAIN: "uncertain",
}
GROUP_ORDER = ("completed", "failed", "running", "pending", "uncertain")
DECISIONS = ("approved", "rejected", "unreviewed")

# "Problems first": what needs a person's attention leads, everything else keeps manifest order.
_ATTENTION = {"failed": 0, "uncertain": 1}

_RATIO = re.compile(r"^\s*(\d{1,5})\s*[:x×/]\s*(\d{1,5})\s*$")
_DEFAULT_ASPECT = (16, 9)


@dataclass(frozen=True)
class Card:
    """One job as the gallery shows it."""

    job_id: str
    model: str
    prompt: str
    params: Mapping[str, Any]
    seconds: int | None
    entry: LockEntry | None
    orphan: bool  # in the lockfile but no longer in the manifest
    stale: bool  # the manifest changed the job since this entry was made
    order: int  # position in the manifest (orphans after every manifest job)
    aspect: tuple[int, int]  # width, height of the video box
    images: tuple[tuple[str, Path], ...] = ()  # (field, local file) of each input image
    group: str = ""  # which manifest entry made the job: its variants share it
    variables: Mapping[str, str] | None = None  # what tells the entry's variants apart
    axes: Mapping[str, str] | None = None  # the matrix (or rows) values that made the job

    @property
    def status(self) -> Status:
        return self.entry.status if self.entry else Status.PENDING

    @property
    def state_group(self) -> str:
        return GROUPS[self.status]

    @property
    def decision(self) -> str:
        decision = self.entry.decision if self.entry else None
        return decision or "unreviewed"

    @property
    def completed_at(self) -> str:
        return (self.entry.completed_at or "") if self.entry else ""


def build_cards(jobs: Iterable[JobSpec], state: LockState) -> list[Card]:
    """One card per job, problems first, then manifest order; the lockfile's orphans last."""
    cards: list[Card] = []
    seen: set[str] = set()
    for order, job in enumerate(jobs):
        seen.add(job.id)
        entry = state.jobs.get(job.id)
        cards.append(
            Card(
                job_id=job.id,
                model=job.model,
                prompt=job.prompt,
                params={k: v for k, v in job.fields.items() if k != "prompt"},
                seconds=job.seconds,
                entry=entry,
                orphan=False,
                stale=entry is not None and entry.spec_hash != job.spec_hash,
                order=order,
                aspect=aspect_of(job.fields),
                images=tuple(
                    (f.field, f.path) for f in job.files if f.media_type.startswith("image/")
                ),
                group=job.entry or f"entry at line {job.source.line}",
                axes={k: display(v) for k, v in job.variables.items()},
            )
        )
    for job_id in sorted(set(state.jobs) - seen):
        entry = state.jobs[job_id]
        # No manifest job is left for an orphan: the lockfile's canonical spec (the request as
        # it was hashed, local files as "sha256:..." references) is all there is to show.
        fields = entry.spec
        cards.append(
            Card(
                job_id=job_id,
                model=entry.model,
                prompt=str(fields.get("prompt", "")),
                params={k: v for k, v in fields.items() if k not in ("prompt", "model")},
                seconds=_as_int(fields.get("seconds")),
                entry=entry,
                orphan=True,
                stale=False,
                order=len(cards),
                aspect=aspect_of(fields),
            )
        )
    cards = _with_variables(cards)
    cards.sort(key=lambda c: (c.orphan, _ATTENTION.get(c.state_group, 2), c.order))
    return cards


def aspect_of(fields: Mapping[str, Any]) -> tuple[int, int]:
    """The video's shape from the request: `aspect_ratio` ("9:16") or `size` ("720x1280")."""
    for name in ("aspect_ratio", "size"):
        match = _RATIO.match(str(fields.get(name, "")))
        if match:
            width, height = int(match[1]), int(match[2])
            if width and height:
                return width, height
    return _DEFAULT_ASPECT


def _with_variables(cards: list[Card]) -> list[Card]:
    """Give the variants of each matrix (or rows) entry the fields that tell them apart."""
    by_group: dict[str, list[int]] = defaultdict(list)
    for index, card in enumerate(cards):
        if card.group:
            by_group[card.group].append(index)
    out = list(cards)
    for members in by_group.values():
        if len(members) < 2:
            continue
        # The entry's own variables name the axes (`animal`, not the prompt they fill); jobs
        # without them (orphans, an entry that changed shape) are compared on their fields.
        if all(cards[i].axes for i in members):
            shown = [dict(cards[i].axes or {}) for i in members]
        else:
            shown = [_variant_fields(cards[i]) for i in members]
        # The prompt (where template variables show) leads: the comparison view takes the
        # last key for its columns, and short values such as "9:16" make better columns.
        keys = sorted({k for fields in shown for k in fields}, key=lambda k: (k != "prompt", k))
        varying = [k for k in keys if len({fields.get(k) for fields in shown}) > 1]
        for i, fields in zip(members, shown):
            out[i] = replace(cards[i], variables={k: fields.get(k, "") for k in varying})
    return out


def _variant_fields(card: Card) -> dict[str, str]:
    fields = {k: display(v) for k, v in card.params.items()}
    fields["prompt"] = card.prompt
    fields["model"] = card.model
    return fields


# Data URIs of reference images can be megabytes; the card only needs to say what was sent.
MAX_VALUE_CHARS = 120


def display(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(display(v) for v in value)
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        return text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def duration(entry: LockEntry | None) -> str | None:
    """Wall time from submission to completion, e.g. `2m 05s`."""
    if entry is None or not entry.submitted_at or not entry.completed_at:
        return None
    try:
        start = datetime.fromisoformat(entry.submitted_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(entry.completed_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    elapsed = (end - start).total_seconds()
    if elapsed < 1:
        return "under 1s"
    total = round(elapsed)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
