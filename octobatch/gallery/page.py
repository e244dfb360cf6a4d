"""The gallery page: `index.html` in the output directory, one card per job.

The static page must work opened straight from disk, possibly years later and offline, so it
is one self-contained file: inline CSS and one inline script, no external assets, media linked
relative to the page. Without the script every card is still there and every video plays; the
script adds the filters, the sort, the comparison view and lazy video loading (10,000 cards
must not ask for 10,000 videos' metadata at once). Prompts are user text and error messages
come from the provider: everything inserted into the page is HTML-escaped, and the script
only ever sets text, never markup.

The review server renders the same page with a token and review controls (`review=`).
"""

from __future__ import annotations

import html
import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from octobatch.errors import OctobatchError
from octobatch.fsutil import atomic_write, make_dirs
from octobatch.gallery.cards import (
    DECISIONS,
    GROUP_ORDER,
    Card,
    build_cards,
    display,
    duration,
)
from octobatch.gallery.takes import takes_of
from octobatch.manifest.outputs import write_root
from octobatch.state import LockEntry, LockState, Status

if TYPE_CHECKING:
    from octobatch.manifest import Manifest

GALLERY_NAME = "index.html"
PAGE_MODE = 0o644  # a page to share and serve, not a secret (issue 9)
# Cards whose video player is in the page from the start: about a screenful. The rest get
# theirs as they scroll near (the script).
EAGER_VIDEOS = 12

# Where a local file is linked from the page: a relative URL for the static page, a route of
# the review server.
Link = Callable[[Path], str]


@dataclass(frozen=True)
class Review:
    """What the review server adds to the page: the token its API wants."""

    token: str


def write_gallery(manifest: Manifest, state: LockState, *, now: datetime | None = None) -> Path:
    """Write `<manifest.output_dir>/index.html` atomically and return its path."""
    target = manifest.output_dir / GALLERY_NAME
    page = render_gallery(manifest, state, now=now)
    _atomic_write_text(target, page, write_root(manifest.output_dir, manifest.path))
    return target


def render_gallery(
    manifest: Manifest,
    state: LockState,
    *,
    now: datetime | None = None,
    link: Link | None = None,
    review: Review | None = None,
) -> str:
    """The gallery page for `manifest` and its current state, as one HTML string."""
    page_dir = manifest.output_dir
    cards = build_cards(manifest.jobs, state)
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    title = f"octobatch: {manifest.path.name}"
    to_url = link or (lambda path: relative_url(path, page_dir))
    lock_dir = manifest.lock_path.parent
    body = "\n".join(
        _card_html(card, lock_dir, to_url, eager=i < EAGER_VIDEOS, review=review is not None)
        for i, card in enumerate(cards)
    )
    return _PAGE.format(
        title=_esc(title),
        css=_asset("gallery.css"),
        script=_asset("gallery.js"),
        mode="review" if review else "static",
        token=f'<meta name="octobatch-token" content="{_esc(review.token)}">\n' if review else "",
        summary=_summary_html(cards),
        toolbar=_toolbar_html(cards, review is not None),
        when=_esc(when),
        cards=body or '<p class="empty">This manifest has no jobs.</p>',
    )


def relative_url(path: Path, page_dir: Path) -> str:
    """`path` as a URL relative to a page in `page_dir` (spaces and the like encoded)."""
    return quote(Path(os.path.relpath(path, page_dir)).as_posix())


@cache
def _asset(name: str) -> str:
    return resources.files("octobatch.gallery").joinpath(f"static/{name}").read_text("utf-8")


# --- summary and toolbar ----------------------------------------------------------------------


def _summary_html(cards: Sequence[Card]) -> str:
    """Counts over the manifest's jobs, each a link to its filter; orphans are counted apart."""
    jobs = [c for c in cards if not c.orphan]
    counts = Counter(c.state_group for c in jobs)
    done_seconds = sum(c.seconds or 0 for c in jobs if c.status is Status.COMPLETED)
    total_seconds = sum(c.seconds or 0 for c in jobs)
    items = [_count_li("status", name, counts[name], f"s-{name}") for name in GROUP_ORDER]
    items.append(
        f'<li class="count"><b>{done_seconds}</b> of {total_seconds} s of video ready</li>'
    )
    orphans = len(cards) - len(jobs)
    if orphans:
        items.append(f'<li class="count muted"><b>{orphans}</b> removed from manifest</li>')
    decisions = Counter(c.decision for c in cards)
    models = Counter(c.model for c in cards)
    by_decision = "".join(_count_li("decision", d, decisions[d], f"d-{d}") for d in DECISIONS)
    by_model = "".join(_count_li("model", m, models[m], "") for m in sorted(models))
    return (
        f'<ul class="summary">{"".join(items)}</ul>\n'
        f'<ul class="summary-more" aria-label="decisions">{by_decision}</ul>\n'
        f'<ul class="summary-more" aria-label="models">{by_model}</ul>'
    )


def _count_li(key: str, value: str, count: int, css: str) -> str:
    href = f"#{key}={quote(value)}"
    return (
        f'<li class="count {css}" data-count="{_esc(key)}:{_esc(value)}">'
        f'<a href="{_esc(href)}"><b>{count}</b> {_esc(value)}</a></li>'
    )


def _toolbar_html(cards: Sequence[Card], review: bool) -> str:
    """Filters and sort; hidden until the script runs, since only the script makes them work."""
    models = sorted({c.model for c in cards})
    statuses = _options(GROUP_ORDER)
    sorts = _options(
        ("attention", "manifest", "id", "newest"),
        ("problems first", "manifest order", "job id", "newest first"),
    )
    keys = (
        '<p class="keys">Keys: <kbd>j</kbd>/<kbd>k</kbd> next/previous, <kbd>a</kbd> approve, '
        "<kbd>r</kbd> reject, <kbd>u</kbd> undecided, <kbd>1</kbd>-<kbd>9</kbd> choose take, "
        "<kbd>c</kbd> compare</p>"
        if review
        else ""
    )
    return (
        '<form class="toolbar" id="toolbar" hidden>'
        f'<label>Status <select name="status"><option value="">all</option>{statuses}</select></label>'
        f'<label>Model <select name="model"><option value="">all</option>{_options(models)}</select></label>'
        f'<label>Decision <select name="decision"><option value="">all</option>{_options(DECISIONS)}</select></label>'
        f'<label>Sort <select name="sort">{sorts}</select></label>'
        '<label><input type="checkbox" name="view" value="compare"> compare variants</label>'
        '<output id="shown"></output>'
        f"</form>{keys}"
    )


def _options(values: Sequence[str], labels: Sequence[str] | None = None) -> str:
    return "".join(
        f'<option value="{_esc(v)}">{_esc(label)}</option>'
        for v, label in zip(values, labels or values)
    )


# --- one card ---------------------------------------------------------------------------------


def _card_html(card: Card, lock_dir: Path, link: Link, *, eager: bool, review: bool) -> str:
    entry = card.entry
    status = card.status
    badges = [f'<span class="badge s-{card.state_group}">{_esc(status.value)}</span>']
    if card.decision != "unreviewed":
        badges.append(f'<span class="badge d-{card.decision}">{card.decision}</span>')
    if entry is not None and (entry.possible_duplicate
                              or any(t.possible_duplicate for t in entry.take_history())):
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
    changed = _file_changed(entry, lock_dir)
    if changed is not None:
        badges.append(f'<span class="badge warn" title="{_esc(changed)}">file changed</span>')

    rows = [("model", card.model), *((k, display(v)) for k, v in sorted(card.params.items()))]
    took = duration(entry)
    if took:
        rows.append(("took", took))
    if entry is not None and entry.task_id:
        rows.append(("task", entry.task_id))
    table = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)

    error = ""
    if entry is not None and entry.error and status is not Status.COMPLETED:
        code = entry.error.get("code") or "error"
        message = entry.error.get("message") or ""
        error = f'<p class="error"><b>{_esc(code)}</b> {_esc(message)}</p>'

    attrs = {
        "class": "card",
        "id": f"job-{card.job_id}",
        "data-id": card.job_id,
        "data-status": card.state_group,
        "data-model": card.model,
        "data-decision": card.decision,
        "data-order": str(card.order),
        "data-completed": card.completed_at,
        "tabindex": "-1",
    }
    if card.orphan:
        attrs["data-orphan"] = ""
    if card.variables:
        attrs["data-group"] = card.group
        attrs["data-vars"] = json.dumps(card.variables, ensure_ascii=False)
    opening = " ".join(f'{k}="{_esc(v)}"' for k, v in attrs.items())
    return (
        f"<article {opening}>"
        f"{_media_html(card, lock_dir, link, eager)}"
        f'<div class="body"><h2>{_esc(card.job_id)}</h2>'
        f'<p class="badges">{"".join(badges)}</p>'
        f'<p class="prompt">{_esc(card.prompt)}</p>'
        f"{error}{_inputs_html(card, link)}{_takes_html(card, lock_dir, link, review)}"
        f"{_review_html(card) if review else ''}"
        f"<table>{table}</table></div></article>"
    )


def _media_html(card: Card, lock_dir: Path, link: Link, eager: bool) -> str:
    width, height = card.aspect
    shape = "wide" if width >= height else "tall"
    frame = f'<div class="frame {shape}" style="aspect-ratio: {width} / {height}">'
    entry = card.entry
    inner = f'<div class="placeholder">{_esc(card.status.value)}</div>'
    if entry is not None and entry.output:
        video = lock_dir / entry.output
        if video.is_file():
            src = _esc(link(video))
            # A <video> element is heavy even with preload="none" (a player and its controls
            # each): beyond the first screenful the card holds a link the script swaps for
            # the player as it scrolls near; without the script the link opens the clip.
            inner = (
                f'<video controls preload="metadata" src="{src}"></video>'
                if eager
                else f'<a class="lazy-video" href="{src}">play</a>'
            )
        elif card.status is Status.COMPLETED:
            inner = (
                '<div class="placeholder">file missing: '
                "<code>octobatch run</code> downloads it again</div>"
            )
    return f'<div class="media">{frame}{inner}</div></div>'


def _inputs_html(card: Card, link: Link) -> str:
    """Thumbnails of the job's local input images, each linking to the full image."""
    if not card.images:
        return ""
    thumbs = "".join(
        f'<a href="{_esc(link(path))}" title="{_esc(field)}: {_esc(path.name)}">'
        f'<img src="{_esc(link(path))}" alt="{_esc(field)}" loading="lazy"></a>'
        for field, path in card.images
        if path.is_file()
    )
    return f'<p class="inputs">{thumbs}</p>' if thumbs else ""


def _file_changed(entry: LockEntry | None, lock_dir: Path) -> str | None:
    """Why a completed job's file is not the one the lockfile records, if it is not (a
    missing file shows in the video's place instead).

    By size only: the page is written after every run, and reading each video to hash it
    would cost that run minutes on a large batch (`plan` does the full check).
    """
    if entry is None or entry.status is not Status.COMPLETED or not entry.output:
        return None
    try:
        info = os.lstat(lock_dir / entry.output)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or entry.bytes not in (None, info.st_size):
        return (f"this is not the file octobatch wrote ({info.st_size} bytes, not "
                f"{entry.bytes}); runs leave it alone: move it away to download the video again")
    return None


def _takes_html(card: Card, lock_dir: Path, link: Link, review: bool) -> str:
    """Every take the job has had, the selected one marked; each links to its own file."""
    takes = takes_of(card.entry)
    if len(takes) < 2 and not review:
        return ""
    if not takes:
        return ""
    items = []
    for take in takes:
        label = f"take {take.number}" + (" (selected)" if take.selected else "")
        path = lock_dir / take.output if take.output else None
        if path is not None and path.is_file():
            body = f'<a href="{_esc(link(path))}">{_esc(label)}</a>'
        else:
            body = _esc(label)
        choose = (
            f' <button type="button" data-take="{take.number}">choose</button>'
            if review and not take.selected
            else ""
        )
        css = ' class="selected"' if take.selected else ""
        if take.possible_duplicate:
            body += ' <span class="warn">possible duplicate</span>'
        items.append(f"<li{css}>{body}{choose}</li>")
    return f'<ul class="takes">{"".join(items)}</ul>'


def _review_html(card: Card) -> str:
    if card.orphan or card.entry is None:  # only what a run recorded can carry a decision
        return ""
    return (
        '<p class="review">'
        '<button type="button" data-decision="approved" title="a">Approve</button>'
        '<button type="button" data-decision="rejected" title="r">Reject</button>'
        '<button type="button" data-decision="" title="u">Undecided</button>'
        "</p>"
    )


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _atomic_write_text(target: Path, text: str, root: Path | None) -> None:
    """Readers never see half a page; 0644, never written through a symlink (fsutil)."""
    try:
        make_dirs(target.parent, root=root)
        atomic_write(target, text.encode("utf-8"), root=root, mode=PAGE_MODE)
    except OSError as exc:
        raise OctobatchError(f"cannot write the gallery {target}: {exc.strerror}") from None


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="octobatch">
{token}<title>{title}</title>
<style>{css}</style>
</head>
<body data-mode="{mode}">
<header><h1>{title}</h1><p>Updated {when}</p></header>
{summary}
{toolbar}
<section id="compare" hidden></section>
<main class="grid" id="cards">
{cards}
</main>
<script>{script}</script>
</body>
</html>
"""
