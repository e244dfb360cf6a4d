"""Headless Chromium driven over the DevTools protocol with aiohttp (already a runtime
dependency), so no WebDriver package is needed. Used by the browser tests and the gallery
benchmark.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

STARTUP_TIMEOUT = 30.0
CALL_TIMEOUT = 60.0


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
        # A safety net, not a timing assumption: a reply lost to a navigation would otherwise
        # hang the test run instead of failing it.
        return await asyncio.wait_for(self._call(method, **params), CALL_TIMEOUT)

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
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
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
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


async def press(page: DevTools, key: str) -> None:
    """Type one printable key as a user would (keydown, char, keyup)."""
    await page.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key)
    await page.call("Input.dispatchKeyEvent", type="keyUp", key=key)


async def click(page: DevTools, selector: str) -> None:
    """A real mouse click in the middle of the element (scrolled into view first)."""
    box: dict[str, Any] = await page.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
        " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        await page.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"],
                        button="left", clickCount=1)
    await settle(page)


async def settle(page: DevTools) -> None:
    """Let the page handle what the input queued (hashchange fires after the click returns).

    An input that reloads the page (choosing a take) may navigate away while this waits: that
    is the page handling it, and the caller waits for the reloaded page itself.
    """
    try:
        await page.evaluate("new Promise(ok => setTimeout(ok, 20))")
    except AssertionError as exc:
        if "navigated" not in str(exc) and "context" not in str(exc).lower():
            raise
