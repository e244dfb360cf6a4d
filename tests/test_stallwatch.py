"""The body's stall watch, on a real body from a loopback server that goes silent midway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from loopback import serving

from octobatch.stallwatch import StallWatch

STALL = 0.15


@pytest.fixture
async def silent_body() -> AsyncIterator[str]:
    """A URL whose body sends 10 bytes, then nothing until the test ends."""
    done = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b"0123456789")
        await done.wait()
        return resp

    async with serving(web.get("/", handler)) as base_url:
        yield f"{base_url}/"
        done.set()


async def test_silence_cuts_the_body_and_the_reader_s_own_work_does_not(
        silent_body: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(silent_body) as resp:
        watch = StallWatch(resp, STALL)
        assert await resp.content.read(10) == b"0123456789"
        watch.arrived()
        watch.busy = True  # say, a slow disk: three stall limits of it
        await asyncio.sleep(3 * STALL)
        assert resp.content.exception() is None
        watch.busy = False
        watch.arrived()
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await resp.content.read(10)
        # Cut once the silence is a stall limit long, not before (the timer re-armed).
        assert time.monotonic() - started >= STALL * 0.9
        watch.close()


async def test_a_closed_watch_cuts_nothing(silent_body: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(silent_body) as resp:
        watch = StallWatch(resp, STALL)
        watch.close()
        await asyncio.sleep(2 * STALL)
        assert resp.content.exception() is None
