"""The static gallery's filters, sort, counts, card shapes, thumbnails and comparison view, in a
real headless Chromium, with the page opened from disk as a user opens it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from chromium import DevTools, chromium_binary, click, headless_chromium

from octobatch.gallery import write_gallery
from octobatch.manifest import Manifest, load_manifest
from octobatch.state import LockEntry, LockState, Status

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PAGE_TIMEOUT = 30.0

MANIFEST = """\
version: 1
defaults:
  model: omni-fast
  seconds: 4
  aspect_ratio: "16:9"
jobs:
  - id: "walk-{animal}-{aspect_ratio}"
    prompt: "A {animal} walks through snow"
    matrix:
      animal: [cat, dog]
      aspect_ratio: ["16:9", "9:16"]
  - id: portrait
    model: jimeng-video-3.0
    prompt: A portrait that moves
    size: 720x1280
    input_reference: refs/face.png
  - id: fromimage
    prompt: From a first frame <b>bold?</b>
    first_image_url: refs/face.png
  - id: broken
    prompt: This one failed
"""
STATUSES = {
    "walk-cat-16-9": Status.COMPLETED,
    "walk-cat-9-16": Status.COMPLETED,
    "walk-dog-16-9": Status.FAILED,
    "walk-dog-9-16": Status.RUNNING,
    "portrait": Status.COMPLETED,
    "fromimage": Status.COMPLETED,
    "broken": Status.FAILED,
}


def build(directory: Path, png: bytes) -> Manifest:
    """The manifest above with a lockfile state (no run needed) and its gallery written."""
    path = directory / "shots.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    (directory / "refs").mkdir()
    (directory / "refs" / "face.png").write_bytes(png)
    manifest = load_manifest(path, output_dir=directory / "out")
    manifest.output_dir.mkdir(parents=True)
    jobs: dict[str, LockEntry] = {}
    for job in manifest.jobs:
        status = STATUSES[job.id]
        output = None
        if status is Status.COMPLETED:
            video = manifest.output_dir / f"{job.id}.mp4"
            video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
            output = os.path.relpath(video, manifest.lock_path.parent)
        error = {"code": "generation_failed", "message": "no"} if status is Status.FAILED else None
        jobs[job.id] = LockEntry(spec_hash=job.spec_hash, model=job.model, status=status,
                                 output=output, error=error, task_id=f"video_{job.id}",
                                 completed_at=f"2026-05-01T12:00:0{len(jobs)}Z")
    write_gallery(manifest, LockState(manifest=path.name, jobs=jobs))
    return manifest


@asynccontextmanager
async def opened(tmp_path: Path, png: bytes) -> AsyncIterator[tuple[DevTools, Manifest]]:
    """The gallery of the manifest above, open in a fresh headless Chromium.

    A context manager rather than an async fixture: the DevTools websocket must be used from
    the task that opened it.
    """
    binary = chromium_binary()
    manifest = build(tmp_path, png)
    async with headless_chromium(binary, tmp_path / "profile") as devtools:
        await asyncio.wait_for(
            devtools.navigate((manifest.output_dir / "index.html").as_uri()), PAGE_TIMEOUT
        )
        await wait_ready(devtools)
        yield devtools, manifest


async def wait_ready(page: DevTools) -> None:
    await page.evaluate(
        "new Promise(ok => { const t = () => document.documentElement.dataset.ready ? ok(1)"
        " : setTimeout(t, 10); t(); })"
    )


async def visible_ids(page: DevTools) -> list[str]:
    ids: list[str] = await page.evaluate(
        "[...document.querySelectorAll('#cards article.card')]"
        ".filter(c => c.getClientRects().length).map(c => c.dataset.id)"
    )
    return ids


async def choose(page: DevTools, name: str, value: str) -> None:
    """Pick an option in the toolbar as a user does (the select fires `change`)."""
    await page.evaluate(
        f"(() => {{ const s = document.querySelector('#toolbar [name={name}]');"
        f" s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"
    )


async def test_problems_first_then_filters_by_status_and_model(tmp_path: Path, tiny_images: dict[str, bytes]) -> None:
    async with opened(tmp_path, tiny_images["png"]) as (devtools, _):
        every = ["walk-dog-16-9", "broken", "walk-cat-16-9", "walk-cat-9-16", "walk-dog-9-16",
                 "portrait", "fromimage"]
        assert await visible_ids(devtools) == every
        assert await devtools.evaluate("document.getElementById('shown').textContent") == "showing 7 of 7"

        await choose(devtools, "status", "failed")
        assert await visible_ids(devtools) == ["walk-dog-16-9", "broken"]
        assert await devtools.evaluate("location.hash") == "#status=failed"
        await choose(devtools, "model", "omni-fast")
        assert await visible_ids(devtools) == ["walk-dog-16-9", "broken"]
        await choose(devtools, "status", "completed")
        assert await visible_ids(devtools) == ["walk-cat-16-9", "walk-cat-9-16", "fromimage"]
        await choose(devtools, "model", "jimeng-video-3.0")
        assert await visible_ids(devtools) == ["portrait"]
        await choose(devtools, "decision", "approved")
        assert await visible_ids(devtools) == []
        await choose(devtools, "decision", "unreviewed")
        assert await visible_ids(devtools) == ["portrait"]


async def test_counts_link_to_their_filter_and_the_hash_is_a_bookmark(tmp_path: Path, tiny_images: dict[str, bytes]) -> None:
    async with opened(tmp_path, tiny_images["png"]) as (devtools, manifest):
        await click(devtools, '[data-count="status:running"] a')
        assert await visible_ids(devtools) == ["walk-dog-9-16"]
        assert await devtools.evaluate(
            "document.querySelector('#toolbar [name=status]').value") == "running"
        assert await devtools.evaluate(
            "document.querySelector('[data-count=\"status:running\"]').classList.contains('active')")
        await click(devtools, '[data-count="model:jimeng-video-3.0"] a')
        assert await visible_ids(devtools) == ["portrait"]

        # Opened with a filter in the URL (a bookmark, a shared link): applied at once.
        uri = (manifest.output_dir / "index.html").as_uri()
        await devtools.navigate("about:blank")  # a hash-only change would not reload the page
        await devtools.navigate(f"{uri}#status=failed&sort=id")
        await wait_ready(devtools)
        assert await visible_ids(devtools) == ["broken", "walk-dog-16-9"]


async def test_sort_orders(tmp_path: Path, tiny_images: dict[str, bytes]) -> None:
    async with opened(tmp_path, tiny_images["png"]) as (devtools, _):
        await choose(devtools, "sort", "manifest")
        assert await visible_ids(devtools) == list(STATUSES)
        await choose(devtools, "sort", "id")
        assert await visible_ids(devtools) == sorted(STATUSES)
        await choose(devtools, "sort", "newest")
        assert (await visible_ids(devtools))[0] == "broken"  # the latest completed_at
        await choose(devtools, "sort", "attention")
        assert (await visible_ids(devtools))[:2] == ["walk-dog-16-9", "broken"]


async def test_boxes_keep_the_clip_shape_and_inputs_have_thumbnails(tmp_path: Path, tiny_images: dict[str, bytes]) -> None:
    async with opened(tmp_path, tiny_images["png"]) as (devtools, _):
        shapes = await devtools.evaluate(
            "Object.fromEntries([...document.querySelectorAll('article.card')].map(c => {"
            " const r = c.querySelector('.frame').getBoundingClientRect();"
            " return [c.dataset.id, r.width / r.height]; }))"
        )
        assert shapes["walk-cat-16-9"] == pytest.approx(16 / 9, rel=0.02)
        assert shapes["walk-cat-9-16"] == pytest.approx(9 / 16, rel=0.02)
        assert shapes["portrait"] == pytest.approx(720 / 1280, rel=0.02)  # from `size`
        thumbs = await devtools.evaluate(
            "Object.fromEntries([...document.querySelectorAll('article.card')].map(c =>"
            " [c.dataset.id, [...c.querySelectorAll('.inputs img')].map(i =>"
            " ({alt: i.alt, loaded: i.complete && i.naturalWidth > 0}))]))"
        )
        assert thumbs["portrait"] == [{"alt": "input_reference", "loaded": True}]
        assert thumbs["fromimage"] == [{"alt": "first_image_url", "loaded": True}]
        assert thumbs["broken"] == []
        ARTIFACTS.mkdir(exist_ok=True)
        await devtools.screenshot(ARTIFACTS / "gallery-shapes.png")


async def test_comparison_view_lays_variants_out_on_their_variables(tmp_path: Path, tiny_images: dict[str, bytes]) -> None:
    async with opened(tmp_path, tiny_images["png"]) as (devtools, _):
        await click(devtools, "#toolbar [name=view]")
        assert await devtools.evaluate("location.hash") == "#view=compare"
        table = await devtools.evaluate(
            "[...document.querySelectorAll('#compare .group tr')].map(tr =>"
            " [...tr.children].map(td => td.dataset.job || td.textContent))"
        )
        # One matrix entry laid out on its own variables: rows by {animal}, columns by ratio.
        assert table == [
            ["animal", "aspect_ratio: 16:9", "aspect_ratio: 9:16"],
            ["animal: cat", "walk-cat-16-9", "walk-cat-9-16"],
            ["animal: dog", "walk-dog-16-9", "walk-dog-9-16"],
        ]
        assert await visible_ids(devtools) == []  # the grid gives way to the comparison
        ARTIFACTS.mkdir(exist_ok=True)
        await devtools.screenshot(ARTIFACTS / "gallery-compare.png")

        await choose(devtools, "status", "completed")  # filters apply to the comparison too
        cells = await devtools.evaluate(
            "[...document.querySelectorAll('#compare td.cell')].map(td => td.dataset.job)")
        assert cells == ["walk-cat-16-9", "walk-cat-9-16"]


async def test_only_videos_near_the_viewport_ask_for_data(tmp_path: Path) -> None:
    """Past the first screenful, a card gets its video player only as it is scrolled near."""
    binary = chromium_binary()
    lines = ["version: 1", "defaults: {model: omni-fast, seconds: 4, aspect_ratio: '16:9'}",
             "jobs:", "  - id: 'n-{n}'", "    prompt: 'shot {n}'", "    matrix:",
             f"      n: [{', '.join(f'{i:03d}' for i in range(60))}]"]
    path = tmp_path / "many.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = load_manifest(path, output_dir=tmp_path / "out")
    manifest.output_dir.mkdir()
    jobs = {}
    for job in manifest.jobs:
        (manifest.output_dir / f"{job.id}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
        jobs[job.id] = LockEntry(spec_hash=job.spec_hash, model=job.model,
                                 status=Status.COMPLETED, output=f"out/{job.id}.mp4")
    index = write_gallery(manifest, LockState(manifest=path.name, jobs=jobs))
    async with headless_chromium(binary, tmp_path / "profile") as devtools:
        await asyncio.wait_for(devtools.navigate(index.as_uri()), PAGE_TIMEOUT)
        await wait_ready(devtools)
        players = ("[...document.querySelectorAll('article.card')].map(c =>"
                   " c.querySelector('video') ? c.querySelector('video').preload : 'link')")
        before = await devtools.evaluate(players)
        await devtools.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        await devtools.evaluate("new Promise(ok => setTimeout(ok, 200))")
        after = await devtools.evaluate(players)
    assert before[:12] == ["metadata"] * 12 and set(before[12:]) == {"link"}
    assert after[-1] == "metadata" and after[30] == "link"
