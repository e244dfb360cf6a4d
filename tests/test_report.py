"""The HTML gallery's content: one card per job, escaped text, working relative links."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

import pytest

from octobatch.cli import main
from octobatch.gallery import render_gallery, write_gallery
from octobatch.manifest import Manifest, load_manifest
from octobatch.state import LockEntry, LockState, Status, load_state, write_lockfile

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
HOSTILE = """<script>alert("x")</script> & 'friends'"""

MANIFEST = f"""\
version: 1
defaults:
  model: omni-fast
  seconds: 8
  aspect_ratio: "16:9"
output_dir: ../my output
jobs:
  - id: beach
    prompt: Ocean waves at golden hour
  - id: cat
    model: jimeng-video-3.0
    prompt: 猫咪在草地上追逐蝴蝶
    size: 1280x720
    seconds: 10
  - id: hostile
    prompt: {json.dumps(HOSTILE)}
  - id: later
    prompt: Not run yet
"""


@dataclass
class Card:
    id: str
    text: str = ""
    videos: list[dict[str, str | None]] = field(default_factory=list)
    badges: list[str] = field(default_factory=list)


class Cards(HTMLParser):
    """Each `<article class="card">` as a Card, and the summary's text."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[Card] = []
        self.summary = ""
        self._in_summary = False
        self._in_badge = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "article":
            self.cards.append(Card(id=str(a["id"])))
        elif tag == "video" and self.cards:
            self.cards[-1].videos.append(a)
        elif tag == "ul" and a.get("class") == "summary":
            self._in_summary = True
        elif tag == "span" and "badge" in (a.get("class") or "") and self.cards:
            self._in_badge = True
            self.cards[-1].badges.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "ul":
            self._in_summary = False
        if tag == "span":
            self._in_badge = False

    def handle_data(self, data: str) -> None:
        if self._in_summary:
            self.summary += data + " "
        elif self.cards:
            self.cards[-1].text += data + " "
            if self._in_badge:
                self.cards[-1].badges[-1] += data


SCRIPT = resources.files("octobatch.gallery").joinpath("static/gallery.js").read_text("utf-8")


def without_own_script(page: str) -> str:
    """The page minus its own inline script: what is left came from the manifest and state."""
    own = f"<script>{SCRIPT}</script>"
    assert page.count(own) == 1
    return page.replace(own, "")


def parse(page: str) -> Cards:
    parser = Cards()
    parser.feed(page)
    return parser


def card(page: str, job_id: str) -> Card:
    (found,) = [c for c in parse(page).cards if c.id == f"job-{job_id}"]
    return found


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    path = tmp_path / "project" / "manifests" / "spring.yaml"
    path.parent.mkdir(parents=True)
    (tmp_path / "project" / ".git").mkdir()  # a clone: its output_dir may leave manifests/
    path.write_text(MANIFEST, encoding="utf-8")
    return load_manifest(path)


def entry(manifest: Manifest, job_id: str, **values: object) -> LockEntry:
    job = next(j for j in manifest.jobs if j.id == job_id)
    return LockEntry(spec_hash=job.spec_hash, model=job.model, **values)  # type: ignore[arg-type]


def completed(manifest: Manifest, job_id: str) -> LockEntry:
    """A completed entry whose MP4 really exists where the lockfile says it is."""
    video = manifest.output_dir / f"{job_id}.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return entry(
        manifest, job_id, status=Status.COMPLETED, task_id=f"video_{job_id}",
        output=os.path.relpath(video, manifest.lock_path.parent),
        submitted_at="2026-05-01T11:58:00Z", completed_at="2026-05-01T11:59:05Z",
    )


def test_one_card_per_job_in_manifest_order_then_orphans(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={
        "zz-removed": LockEntry(spec_hash="old", model="omni-fast", status=Status.COMPLETED,
                                spec={"model": "omni-fast", "prompt": "An old job", "seconds": "4"}),
        "beach": completed(manifest, "beach"),
    })
    cards = parse(render_gallery(manifest, state, now=NOW)).cards
    assert [c.id for c in cards] == [
        "job-beach", "job-cat", "job-hostile", "job-later", "job-zz-removed"
    ]
    orphan = cards[-1]
    assert "removed from manifest" in orphan.badges and "An old job" in orphan.text


def test_card_shows_prompt_model_parameters_status_and_duration(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={"cat": completed(manifest, "cat")})
    cat = card(render_gallery(manifest, state, now=NOW), "cat")
    text = " ".join(cat.text.split())
    for expected in ("猫咪在草地上追逐蝴蝶", "jimeng-video-3.0", "size 1280x720", "seconds 10",
                     "took 1m 05s", "task video_cat"):
        assert expected in text
    assert cat.badges[0] == "completed"


def test_a_changed_video_is_marked_on_its_card(manifest: Manifest) -> None:
    beach, cat = completed(manifest, "beach"), completed(manifest, "cat")
    lock_dir = manifest.lock_path.parent
    beach = LockEntry(**{**beach.values(), "bytes": 12})  # what the run recorded
    cat = LockEntry(**{**cat.values(), "bytes": 12})
    (lock_dir / (cat.output or "")).write_bytes(b"edited in place, longer")
    (lock_dir / (beach.output or "")).unlink()
    state = LockState(manifest="spring.yaml", jobs={"beach": beach, "cat": cat})
    page = render_gallery(manifest, state, now=NOW)
    assert "file missing: " in card(page, "beach").text  # in the video's place
    assert "file changed" in card(page, "cat").badges
    assert "23 bytes, not 12" in page
    untouched = completed(manifest, "later")
    state = LockState(manifest="spring.yaml", jobs={
        "later": LockEntry(**{**untouched.values(), "bytes": 12})})
    badges = card(render_gallery(manifest, state, now=NOW), "later").badges
    assert "file changed" not in badges


def test_user_text_is_escaped(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={
        "hostile": entry(manifest, "hostile", status=Status.FAILED,
                         error={"code": "<b>bad</b>", "message": "<img src=x onerror=alert(1)>"}),
    })
    page = without_own_script(render_gallery(manifest, state, now=NOW))
    assert "<script" not in page and "<img" not in page and "<b>bad" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;friends&#x27;" in page
    assert HOSTILE in card(page, "hostile").text  # the browser shows the text exactly as written


def test_failed_job_shows_its_error_and_no_video(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={
        "beach": entry(manifest, "beach", status=Status.FAILED, task_id="video_1",
                       error={"code": "content_policy", "message": "内容不合规"}),
    })
    beach = card(render_gallery(manifest, state, now=NOW), "beach")
    assert beach.videos == []
    assert "content_policy" in beach.text and "内容不合规" in beach.text
    assert beach.badges[0] == "failed"


def test_video_links_are_relative_to_the_page_and_url_encoded(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={"beach": completed(manifest, "beach")})
    # The lockfile sits in manifests/, the page in "my output/": the src must not care.
    assert manifest.output_dir.name == "my output"
    page_path = write_gallery(manifest, state, now=NOW)
    beach = card(page_path.read_text(encoding="utf-8"), "beach")
    (video,) = beach.videos
    assert video["src"] == "beach.mp4" and video["preload"] == "metadata" and "controls" in video
    assert (page_path.parent / unquote(video["src"])).is_file()


def test_video_outside_the_output_directory_gets_a_relative_path(manifest: Manifest) -> None:
    video = manifest.lock_path.parent / "elsewhere" / "clip one.mp4"
    video.parent.mkdir()
    video.write_bytes(b"mp4")
    state = LockState(manifest="spring.yaml", jobs={
        "beach": entry(manifest, "beach", status=Status.COMPLETED, output="elsewhere/clip one.mp4"),
    })
    page_path = write_gallery(manifest, state, now=NOW)
    beach = card(page_path.read_text(encoding="utf-8"), "beach")
    src = beach.videos[0]["src"]
    assert src == "../manifests/elsewhere/clip%20one.mp4"
    assert (page_path.parent / unquote(src)).resolve() == video.resolve()


def test_completed_job_with_missing_file_says_so(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={
        "beach": entry(manifest, "beach", status=Status.COMPLETED, output="gone.mp4"),
    })
    beach = card(render_gallery(manifest, state, now=NOW), "beach")
    assert beach.videos == [] and "file missing" in beach.text


def test_badges_for_possible_duplicates_and_changed_jobs(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={
        "beach": entry(manifest, "beach", status=Status.UNCERTAIN, possible_duplicate=True),
        "cat": LockEntry(spec_hash="from-an-older-manifest", model="jimeng-video-3.0",
                         status=Status.COMPLETED),
    })
    cards = {c.id: c for c in parse(render_gallery(manifest, state, now=NOW)).cards}
    assert cards["job-beach"].badges == ["uncertain", "possible duplicate"]
    assert cards["job-cat"].badges == ["completed", "outdated"]
    assert "possible duplicate" not in cards["job-later"].badges


def test_summary_counts_states_and_seconds(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={
        "beach": completed(manifest, "beach"),
        "cat": completed(manifest, "cat"),
        "hostile": entry(manifest, "hostile", status=Status.QUEUED, task_id="video_h"),
        "gone": LockEntry(spec_hash="old", model="omni-fast", status=Status.COMPLETED,
                          spec={"model": "omni-fast", "prompt": "Removed", "seconds": "30"}),
    })
    summary = " ".join(parse(render_gallery(manifest, state, now=NOW)).summary.split())
    assert summary == (
        "2 completed 0 failed 1 running 1 pending 0 uncertain 18 of 34 s of video ready "
        "1 removed from manifest"
    )


def test_write_is_atomic_and_replaces_the_old_page(manifest: Manifest) -> None:
    manifest.output_dir.mkdir(parents=True)
    (manifest.output_dir / "index.html").write_text("old page", encoding="utf-8")
    path = write_gallery(manifest, LockState(manifest="spring.yaml"), now=NOW)
    assert path == manifest.output_dir / "index.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in manifest.output_dir.iterdir()) == ["index.html"]


def test_report_command_writes_the_gallery_from_the_lockfile(
    manifest: Manifest, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lockfile(manifest.lock_path, LockState(manifest="spring.yaml", jobs={
        "beach": completed(manifest, "beach"),
    }))
    monkeypatch.chdir(manifest.path.parent)
    assert main(["report", "spring.yaml", "--output-dir", "../gallery"]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed.resolve() == (manifest.path.parent.parent / "gallery" / "index.html").resolve()
    beach = card(printed.read_text(encoding="utf-8"), "beach")
    assert beach.videos[0]["src"] == "../my%20output/beach.mp4"
    assert load_state(manifest.path).jobs["beach"].status is Status.COMPLETED


def test_report_command_rejects_an_invalid_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\njobs:\n  - model: omni-slow\n    prompt: x\n", encoding="utf-8")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3:" in err and "omni-slow" in err
    assert not (tmp_path / "output").exists()


@pytest.mark.parametrize(
    ("submitted", "completed_at", "shown"),
    [
        ("2026-05-01T12:00:00Z", "2026-05-01T12:00:00.400000Z", "took under 1s"),
        ("2026-05-01T12:00:00Z", "2026-05-01T12:00:42Z", "took 42s"),
        ("2026-05-01T12:00:00+00:00", "2026-05-01T13:05:00+00:00", "took 1h 05m"),
    ],
)
def test_duration_is_submission_to_completion(
    manifest: Manifest, submitted: str, completed_at: str, shown: str
) -> None:
    state = LockState(manifest="spring.yaml", jobs={
        "beach": entry(manifest, "beach", status=Status.COMPLETED,
                       submitted_at=submitted, completed_at=completed_at),
    })
    assert shown in " ".join(card(render_gallery(manifest, state, now=NOW), "beach").text.split())


def test_page_is_self_contained(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={"beach": completed(manifest, "beach")})
    page = render_gallery(manifest, state, now=NOW)
    # Opened from disk, offline, years later: nothing may be fetched from anywhere else. The
    # one script is the page's own, inline (no src), and fetches nothing either.
    assert page.count("<script") == 1 and SCRIPT in page
    assert "<script" not in without_own_script(page)
    for needle in ("<link", "@import", "url(", "http://", "https://", "file://", "src="):
        assert needle not in SCRIPT
    for needle in ("<link", "@import", "url(", "http://", "https://", "file://"):
        assert needle not in page
    assert '<meta charset="utf-8">' in page


def test_page_is_world_readable(manifest: Manifest) -> None:
    """The page is for sharing and serving (issue 9): 0644 under the usual umask, not 0600."""
    old = os.umask(0o022)
    try:
        path = write_gallery(manifest, LockState(manifest="spring.yaml"), now=NOW)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_cards_carry_what_the_filters_and_the_comparison_need(manifest: Manifest) -> None:
    state = LockState(manifest="spring.yaml", jobs={
        "beach": completed(manifest, "beach"),
        "hostile": entry(manifest, "hostile", status=Status.FAILED),
    })
    page = render_gallery(manifest, state, now=NOW)
    ids = [c.id for c in parse(page).cards]
    assert ids[0] == "job-hostile"  # problems first
    assert 'data-status="failed" data-model="omni-fast" data-decision="unreviewed"' in page
    assert '<a href="#status=failed"><b>1</b> failed</a>' in page
    assert '<a href="#model=jimeng-video-3.0"><b>1</b> jimeng-video-3.0</a>' in page


def test_rows_variants_are_compared_on_their_columns(tmp_path: Path) -> None:
    from octobatch.gallery.cards import build_cards

    (tmp_path / "shots.csv").write_text("animal,aspect_ratio\ncat,16:9\ncat,9:16\ndog,16:9\n")
    path = tmp_path / "rows.yaml"
    path.write_text(
        "version: 1\n"
        "defaults: {model: omni-fast, seconds: 4}\n"
        "jobs:\n"
        "  - id: 'shot-{animal}-{aspect_ratio}'\n"
        "    prompt: 'A {animal} in the snow'\n"
        "    rows: shots.csv\n"
        "  - id: lone\n"
        "    prompt: one job on its own\n"
        "    aspect_ratio: '16:9'\n"
    )
    cards = {c.job_id: c for c in build_cards(load_manifest(path).jobs,
                                              LockState(manifest="rows.yaml"))}
    # The three rows come from one entry (though from three lines of the CSV), and what tells
    # them apart is named by their columns, not by the prompt the columns filled.
    assert cards["shot-cat-16-9"].variables == {"animal": "cat", "aspect_ratio": "16:9"}
    assert cards["shot-cat-9-16"].variables == {"animal": "cat", "aspect_ratio": "9:16"}
    assert cards["shot-dog-16-9"].variables == {"animal": "dog", "aspect_ratio": "16:9"}
    assert cards["lone"].variables is None
