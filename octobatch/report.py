"""The HTML gallery: `index.html` in the output directory, one card per job.

The page must work opened straight from disk, possibly years later and offline, so it is one
self-contained file: inline CSS, no scripts, no external assets, video sources relative to
the page. Prompts are user text and error messages come from the provider: everything
inserted into the page is HTML-escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from octobatch.errors import OctobatchError
from octobatch.fsutil import atomic_write, make_dirs
from octobatch.state import LockEntry, LockState, Status

if TYPE_CHECKING:
    from octobatch.jobs import JobSpec
    from octobatch.manifest import Manifest

GALLERY_NAME = "index.html"

# The summary groups the engine's in-flight states: a reader wants "still going", not which
# step of the submit/poll cycle each job is in.
_GROUPS: Mapping[Status, str] = {
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.SUBMITTING: "running",
    Status.QUEUED: "running",
    Status.RUNNING: "running",
    Status.PENDING: "pending",
    Status.UNCERTAIN: "uncertain",
}
_SUMMARY_ORDER = ("completed", "failed", "running", "pending", "uncertain")

# Data URIs of reference images can be megabytes; the card only needs to say what was sent.
_MAX_VALUE_CHARS = 120


@dataclass(frozen=True)
class Card:
    """What one card shows, gathered from the manifest job and/or its lockfile entry."""

    job_id: str
    model: str
    prompt: str
    params: Mapping[str, Any]
    seconds: int | None
    entry: LockEntry | None
    orphan: bool  # in the lockfile but no longer in the manifest
    stale: bool  # the manifest changed the job since this entry was made

    @property
    def status(self) -> Status:
        return self.entry.status if self.entry else Status.PENDING


def write_gallery(manifest: Manifest, state: LockState, *, now: datetime | None = None) -> Path:
    """Write `<manifest.output_dir>/index.html` atomically and return its path."""
    out_dir = manifest.output_dir
    target = out_dir / GALLERY_NAME
    page = render_gallery(manifest, state, now=now)
    _atomic_write_text(target, page)
    return target


def render_gallery(manifest: Manifest, state: LockState, *, now: datetime | None = None) -> str:
    """The gallery page for `manifest` and its current state, as one HTML string."""
    cards = build_cards(manifest.jobs, state)
    lock_dir = manifest.lock_path.parent
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    title = f"octobatch: {manifest.path.name}"
    body = "\n".join(_card_html(c, lock_dir, manifest.output_dir) for c in cards)
    return _PAGE.format(
        title=_esc(title),
        css=_CSS,
        summary=_summary_html(cards),
        when=_esc(when),
        cards=body or '<p class="empty">This manifest has no jobs.</p>',
    )


def build_cards(jobs: Iterable[JobSpec], state: LockState) -> list[Card]:
    """One card per manifest job in manifest order, then the lockfile's orphans by id."""
    cards: list[Card] = []
    seen: set[str] = set()
    for job in jobs:
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
            )
        )
    return cards


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _summary_html(cards: list[Card]) -> str:
    """Counts over the manifest's jobs; orphans are counted apart so totals match the manifest."""
    jobs = [c for c in cards if not c.orphan]
    counts = dict.fromkeys(_SUMMARY_ORDER, 0)
    for card in jobs:
        counts[_GROUPS[card.status]] += 1
    done_seconds = sum(c.seconds or 0 for c in jobs if c.status is Status.COMPLETED)
    total_seconds = sum(c.seconds or 0 for c in jobs)
    items = [
        f'<li class="count s-{name}"><b>{counts[name]}</b> {name}</li>' for name in _SUMMARY_ORDER
    ]
    items.append(
        f'<li class="count"><b>{done_seconds}</b> of {total_seconds} s of video ready</li>'
    )
    orphans = len(cards) - len(jobs)
    if orphans:
        items.append(f'<li class="count muted"><b>{orphans}</b> removed from manifest</li>')
    return f'<ul class="summary">{"".join(items)}</ul>'


def _card_html(card: Card, lock_dir: Path, page_dir: Path) -> str:
    entry = card.entry
    status = card.status
    badges = [f'<span class="badge s-{_GROUPS[status]}">{_esc(status.value)}</span>']
    if entry is not None and entry.possible_duplicate:
        badges.append(
            '<span class="badge warn" title="a submission timed out or failed after it was '
            'sent; the provider may have created (and billed) a second task">'
            "possible duplicate</span>"
        )
    if card.stale:
        badges.append(
            '<span class="badge warn" title="the manifest changed this job; the next run '
            'regenerates it">outdated</span>'
        )
    if card.orphan:
        badges.append(
            '<span class="badge muted" title="no longer in the manifest; '
            'octobatch run --prune drops it">removed from manifest</span>'
        )

    rows = [("model", card.model), *((k, _display(v)) for k, v in sorted(card.params.items()))]
    duration = _duration(entry)
    if duration:
        rows.append(("took", duration))
    if entry is not None and entry.task_id:
        rows.append(("task", entry.task_id))
    table = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)

    error = ""
    if entry is not None and entry.error and status is not Status.COMPLETED:
        code = entry.error.get("code") or "error"
        message = entry.error.get("message") or ""
        error = f'<p class="error"><b>{_esc(code)}</b> {_esc(message)}</p>'

    return (
        f'<article class="card" id="job-{_esc(card.job_id)}">'
        f"{_media_html(card, lock_dir, page_dir)}"
        f'<div class="body"><h2>{_esc(card.job_id)}</h2>'
        f'<p class="badges">{"".join(badges)}</p>'
        f'<p class="prompt">{_esc(card.prompt)}</p>'
        f"{error}<table>{table}</table></div></article>"
    )


def _media_html(card: Card, lock_dir: Path, page_dir: Path) -> str:
    entry = card.entry
    if entry is not None and entry.output:
        video = lock_dir / entry.output
        if video.is_file():
            src = quote(Path(os.path.relpath(video, page_dir)).as_posix())
            return f'<video controls preload="metadata" src="{_esc(src)}"></video>'
        if card.status is Status.COMPLETED:
            return (
                '<div class="placeholder">file missing: '
                "<code>octobatch run</code> downloads it again</div>"
            )
    return f'<div class="placeholder">{_esc(card.status.value)}</div>'


def _duration(entry: LockEntry | None) -> str | None:
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


def _display(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_display(v) for v in value)
    text = str(value)
    if len(text) > _MAX_VALUE_CHARS:
        return text[: _MAX_VALUE_CHARS - 1] + "…"
    return text


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _atomic_write_text(target: Path, text: str) -> None:
    """Readers never see half a page; 0644, never written through a symlink (fsutil)."""
    try:
        make_dirs(target.parent)
        atomic_write(target, text.encode("utf-8"))
    except OSError as exc:
        raise OctobatchError(f"cannot write the gallery {target}: {exc.strerror}") from None


_CSS = """
:root { color-scheme: light dark; --fg: #1d1f23; --bg: #f4f5f7; --card: #fff; --muted: #6b7280;
  --line: #e3e5e8; --ok: #15803d; --bad: #b91c1c; --run: #1d4ed8; --warn: #b45309; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e7ea; --bg: #15171a; --card: #1f2226;
  --muted: #9aa0a8; --line: #30343a; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px; font: 15px/1.45 system-ui, -apple-system, "Segoe UI",
  sans-serif; color: var(--fg); background: var(--bg); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0 0 16px; color: var(--muted); font-size: 13px; }
.summary { list-style: none; display: flex; flex-wrap: wrap; gap: 8px; padding: 0; margin: 0 0 24px; }
.count { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 6px 12px; }
.count b { font-size: 18px; margin-right: 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  overflow: hidden; display: flex; flex-direction: column; }
.card video, .placeholder { width: 100%; aspect-ratio: 16 / 9; background: #000; display: block; }
.placeholder { display: flex; align-items: center; justify-content: center; color: var(--muted);
  background: color-mix(in srgb, var(--muted) 14%, var(--card)); text-align: center;
  padding: 12px; font-size: 14px; }
.body { padding: 12px 14px 14px; }
.body h2 { margin: 0 0 6px; font-size: 16px; word-break: break-all; }
.badges { margin: 0 0 8px; display: flex; flex-wrap: wrap; gap: 6px; }
.badge { font-size: 12px; border-radius: 999px; padding: 1px 9px; border: 1px solid currentColor; }
.s-completed { color: var(--ok); } .s-failed { color: var(--bad); }
.s-running { color: var(--run); } .s-pending, .muted { color: var(--muted); }
.s-uncertain, .warn { color: var(--warn); }
.prompt { margin: 0 0 10px; white-space: pre-wrap; overflow-wrap: anywhere; }
.error { margin: 0 0 10px; padding: 8px 10px; border-radius: 6px; color: var(--bad);
  background: color-mix(in srgb, var(--bad) 10%, transparent); overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th { text-align: left; color: var(--muted); font-weight: normal; padding: 2px 10px 2px 0;
  white-space: nowrap; vertical-align: top; width: 1%; }
td { padding: 2px 0; overflow-wrap: anywhere; }
.empty { color: var(--muted); }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="octobatch">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header><h1>{title}</h1><p>Updated {when}</p></header>
{summary}
<main class="grid">
{cards}
</main>
</body>
</html>
"""
