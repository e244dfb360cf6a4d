"""`octobatch review` in a real headless Chromium: decisions by keyboard and by click, choosing a
take, and the token check from another page; each read back from the lockfile on disk."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from chromium import DevTools, chromium_binary, click, headless_chromium, press
from reviewed_project import build_project, clip, lock_jobs

from octobatch.manifest import Manifest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT = 30.0


@contextmanager
def review_command(manifest: Manifest) -> Iterator[str]:
    """`octobatch review MANIFEST --port 0` as a user starts it; yields the URL it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "octobatch", "review", str(manifest.path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=manifest.path.parent,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


@asynccontextmanager
async def opened(tmp_path: Path) -> AsyncIterator[tuple[DevTools, Manifest, str]]:
    binary = chromium_binary()
    manifest = build_project(tmp_path)
    with review_command(manifest) as url:
        async with headless_chromium(binary, tmp_path / "profile") as page:
            await asyncio.wait_for(page.navigate(url), TIMEOUT)
            await page.evaluate(
                "new Promise(ok => { const t = () => document.documentElement.dataset.ready"
                " ? ok(1) : setTimeout(t, 10); t(); })")
            yield page, manifest, url


async def until(page: DevTools, condition: Any, what: str) -> None:
    """Poll `condition()` (reads the lockfile) while the page's request completes."""
    for _ in range(int(TIMEOUT / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def until_page(page: DevTools, expression: str, what: str) -> None:
    """Poll a page expression, across a reload (evaluating during one fails: try again)."""
    for _ in range(int(TIMEOUT / 0.05)):
        try:
            if await page.evaluate(expression):
                return
        except AssertionError as exc:
            if "navigated" not in str(exc) and "context" not in str(exc).lower():
                raise
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def decision(manifest: Manifest, job: str) -> Any:
    review = lock_jobs(manifest)[job].get("review")
    return review["decision"] if review else "none"


async def current(page: DevTools) -> str:
    job: str = await page.evaluate("document.querySelector('article.card.current').dataset.id")
    return job


async def test_review_by_keyboard_changes_the_lockfile(tmp_path: Path) -> None:
    async with opened(tmp_path) as (page, manifest, _):
        order = await page.evaluate("[...document.querySelectorAll('article.card')]"
                                    ".map(c => c.dataset.id)")
        assert await current(page) == order[0]  # the first card has the keyboard at once
        await press(page, "a")
        await until(page, lambda: decision(manifest, order[0]) == "approved", "approve by key")
        await press(page, "j")
        assert await current(page) == order[1]
        await press(page, "r")
        await until(page, lambda: decision(manifest, order[1]) == "rejected", "reject by key")
        await press(page, "u")
        await until(page, lambda: decision(manifest, order[1]) is None, "undecided by key")
        await press(page, "k")
        assert await current(page) == order[0]
        # The page shows what was recorded: the badge and the counts. The lockfile is written
        # before the server answers, so the page may get its answer a moment after the checks
        # above saw the lockfile change: wait for it.
        await until_page(page, f"document.getElementById('job-{order[0]}')"
                         ".querySelector('.d-approved')?.textContent === 'approved'",
                         "the approved badge")
        approved = await page.evaluate(
            "document.querySelector('[data-count=\"decision:approved\"] b').textContent")
        assert approved == "1"


async def test_review_by_click_and_choosing_a_take(tmp_path: Path) -> None:
    async with opened(tmp_path) as (page, manifest, _):
        await click(page, "#job-dog .review [data-decision=rejected]")
        await until(page, lambda: decision(manifest, "dog") == "rejected", "reject by click")
        takes = await page.evaluate(
            "[...document.querySelectorAll('#job-cat .takes li')].map(li => li.textContent)")
        assert takes == ["take 1 choose", "take 2 (selected)"]
        await click(page, "#job-cat [data-take='1']")
        await until(page, lambda: lock_jobs(manifest)["cat"]["task_id"] == "video_cat_1",
                    "take 1 selected")
        assert (manifest.output_dir / "cat.mp4").read_bytes() == clip("cat", 1)
        # The page reloads with the new selection, the same card still current.
        await until_page(page, "document.documentElement?.dataset.ready === '1' &&"
                         " document.querySelector('#job-cat .takes li.selected')?"
                         ".textContent === 'take 1 (selected)'", "the reloaded page")
        assert await current(page) == "cat"
        selected = await page.evaluate(
            "document.querySelector('#job-cat .takes li.selected').textContent")
        assert selected == "take 1 (selected)"
        await press(page, "2")  # back to take 2 by keyboard
        await until(page, lambda: lock_jobs(manifest)["cat"]["task_id"] == "video_cat_2",
                    "take 2 selected by key")
        await until_page(page, "document.documentElement?.dataset.ready === '1' &&"
                         " document.querySelector('#job-cat .takes li.selected')?"
                         ".textContent === 'take 2 (selected)'", "the page after the key")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(ARTIFACTS / "review.png")


async def test_another_page_cannot_write_a_decision(tmp_path: Path) -> None:
    async with opened(tmp_path) as (page, manifest, url):
        base = url.split("/?")[0]
        # Another origin (any page the user has open) posts to the API without the token.
        await page.navigate("about:blank")
        status = await page.evaluate(
            f"fetch({json.dumps(base + '/api/jobs/beach/review')}, {{method: 'POST', "
            "headers: {'Content-Type': 'text/plain'}, body: '{\"decision\": \"approved\"}'})"
            ".then(r => r.status, e => 'blocked: ' + e)")
        assert status in (403, "blocked: TypeError: Failed to fetch")
        assert "review" not in lock_jobs(manifest)["beach"]
        # The page itself without the token in its URL is refused too.
        await page.navigate(base + "/")
        text = await page.evaluate("document.body.textContent")
        assert "token" in text and not await page.evaluate("!!document.querySelector('.card')")
