"""The gallery in a real headless Chromium, opened from disk as a user would open it.

The MP4s are the simulator's real files, fetched by a real `octobatch run`, so this checks the
whole path: the engine's output layout, the gallery's relative links and that a browser can
play the clips. Chromium is driven over the DevTools protocol with aiohttp (already a runtime
dependency), so no WebDriver package is needed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest

from octobatch.simulator import DEMO_KEY, FAIL_MARKER, SimulatorThread

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
STARTUP_TIMEOUT = 30.0
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


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    hint = (
        "headless Chromium is needed to test the HTML gallery; install it with "
        "`sudo apt-get install chromium` (Debian/Ubuntu) or put chromium on PATH"
    )
    if os.environ.get("CI"):
        pytest.fail(hint)
    pytest.skip(hint)


class DevTools:
    """The few DevTools protocol calls this test needs, over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
        self._ws = ws
        self._next_id = 0
        self._events: list[str] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        await self._ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json()
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
            if "method" in message:
                self._events.append(message["method"])

    async def navigate(self, url: str) -> None:
        """Open `url` and wait for its load event (which may arrive before the reply)."""
        await self.call("Page.enable")
        self._events.clear()
        await self.call("Page.navigate", url=url)
        while "Page.loadEventFired" not in self._events:
            message = await self._ws.receive_json()
            if "method" in message:
                self._events.append(message["method"])

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in reply:
            raise AssertionError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        """The whole page, not only the viewport."""
        metrics = await self.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@asynccontextmanager
async def headless_chromium(binary: str, profile: Path) -> AsyncIterator[DevTools]:
    """A throwaway headless Chromium with its own profile, offline, on a free debug port."""
    profile.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--mute-audio", "--window-size=1280,900",
            f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        port = await asyncio.wait_for(_debug_port(profile, process), STARTUP_TIMEOUT)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield DevTools(ws)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()


async def _debug_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    """Chromium writes the port it picked to DevToolsActivePort in the profile."""
    marker = profile / "DevToolsActivePort"
    while True:
        if process.returncode is not None:
            stderr = (await process.stderr.read()).decode(errors="replace") if process.stderr else ""
            raise AssertionError(f"chromium exited with {process.returncode}: {stderr[-2000:]}")
        text = marker.read_text() if marker.exists() else ""
        if text.strip():
            return int(text.split()[0])
        await asyncio.sleep(0.05)


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

    assert [c["id"] for c in cards] == ALL_JOBS
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
