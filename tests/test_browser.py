"""The gallery in a real headless Chromium, opened from disk as a user would open it.

The MP4s are the simulator's real files, fetched by a real `octobatch run`, so this checks the
whole path: the engine's output layout, the gallery's relative links and that a browser can
play the clips.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from chromium import chromium_binary, headless_chromium

from octobatch.simulator import DEMO_KEY, FAIL_MARKER, SimulatorThread

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PAGE_TIMEOUT = 30.0

MANIFEST = f"""\
version: 1
defaults:
  model: omni-fast
  seconds: 4
  aspect_ratio: "16:9"
jobs:
  - id: waves
    prompt: Ocean waves at golden hour, <b>not bold</b> & "quoted"
  - id: cat
    model: jimeng-video-3.0
    prompt: 猫咪在草地上追逐蝴蝶
    size: 1280x720
  - id: "city-{{time}}"
    prompt: A city in the rain at {{time}}
    aspect_ratio: "9:16"
    matrix:
      time: [dawn, night]
  - id: broken
    prompt: This one fails {FAIL_MARKER}
"""
COMPLETED = ["waves", "cat", "city-dawn", "city-night"]
ALL_JOBS = [*COMPLETED, "broken"]


# Waits until every video has its metadata or an error, then reports each one. Infinity and
# NaN do not survive JSON, so finiteness is decided in the page.
_VIDEO_STATE = """
Promise.all([...document.querySelectorAll('video')].map(v => new Promise(done => {
  const report = () => done({
    src: v.getAttribute('src'), readyState: v.readyState,
    finite: Number.isFinite(v.duration), duration: String(v.duration),
    error: v.error ? v.error.code + ' ' + v.error.message : null,
  });
  if (v.readyState >= 1 || v.error) return report();
  v.addEventListener('loadedmetadata', report, {once: true});
  v.addEventListener('error', report, {once: true});
  setTimeout(report, 15000);
})))
"""

_CARDS = """
[...document.querySelectorAll('article.card')].map(c => ({
  id: c.querySelector('h2').textContent,
  status: c.querySelector('.badge').textContent,
  prompt: c.querySelector('.prompt').textContent,
  error: c.querySelector('.error') ? c.querySelector('.error').textContent : null,
  videos: c.querySelectorAll('video').length,
}))
"""


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of a small manifest against the simulator; returns its index.html."""
    work = tmp_path_factory.mktemp("gallery")
    manifest = work / "manifests" / "browser.yaml"
    manifest.parent.mkdir()
    manifest.write_text(MANIFEST, encoding="utf-8")
    out = work / "my output" / "browser"  # a space: the links must be URL-encoded
    env = {**os.environ, "OCTOPUSX_API_KEY": DEMO_KEY}
    env.pop("OCTOBATCH_BASE_URL", None)
    with SimulatorThread(latency=0.2) as sim:
        result = subprocess.run(
            [sys.executable, "-m", "octobatch", "run", str(manifest), "--base-url", sim.base_url,
             "--output-dir", str(out), "--poll-interval", "0.05", "--quiet"],
            check=False, cwd=work, env=env, capture_output=True, text=True, timeout=120,
        )
    # Exit 1: the [fail] job failed, as intended; everything else must have completed.
    assert result.returncode == 1, result.stderr
    index = out / "index.html"
    assert index.is_file(), f"the run wrote no gallery: {result.stderr}"
    return index


async def test_gallery_opens_from_disk_and_every_video_plays(gallery: Path, tmp_path: Path) -> None:
    binary = chromium_binary()
    async with headless_chromium(binary, tmp_path / "profile") as page:
        await asyncio.wait_for(page.navigate(gallery.as_uri()), PAGE_TIMEOUT)
        cards = await page.evaluate(_CARDS)
        videos = await asyncio.wait_for(page.evaluate(_VIDEO_STATE), PAGE_TIMEOUT)
        can_play = await page.evaluate(
            "document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.42E01E\"')"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(ARTIFACTS / "gallery.png")

    # Problems first (the failed job leads), then manifest order.
    assert [c["id"] for c in cards] == ["broken", *COMPLETED]
    by_id = {c["id"]: c for c in cards}
    assert all(by_id[j]["status"] == "completed" and by_id[j]["videos"] == 1 for j in COMPLETED)
    assert by_id["waves"]["prompt"] == 'Ocean waves at golden hour, <b>not bold</b> & "quoted"'
    assert by_id["broken"]["videos"] == 0 and by_id["broken"]["status"] == "failed"
    assert by_id["broken"]["error"], "a failed job must show the provider's error"

    assert len(videos) == len(COMPLETED)
    for video in videos:
        src_file = gallery.parent / unquote(video["src"])
        assert src_file.is_file(), f"{video['src']} does not exist next to the gallery"
        assert video["error"] is None and video["readyState"] >= 1 and video["finite"], (
            f"Chromium could not load {video['src']} (H.264 MP4 support: {can_play!r}): "
            + json.dumps(video)
        )
        assert float(video["duration"]) > 0
