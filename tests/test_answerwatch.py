"""API answers bounded by one watch for all requests: a hung answer times out, others go on."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from engine_helpers import png_bytes
from loopback import serving

from octobatch.answerwatch import AnswerWatch
from octobatch.jobs import ApiRequest, FilePart
from octobatch.providers import Provider, Providers, TaskState
from octobatch.simulator import DEMO_KEY
from octobatch.transport import Timeout, Transport

LIMIT = 0.3  # the read timeout under test: small, so the tests are quick

ANSWER = {"id": "task_ok", "object": "video", "status": "queued", "progress": 0}


async def serve(hang: set[str], slow: dict[str, float]) -> AsyncIterator[str]:
    """A provider that never answers polls of the tasks in `hang`, answers those in `slow`
    after that many seconds, and never answers a submission at all."""

    async def poll(request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        if task_id in hang:
            await asyncio.Event().wait()
        await asyncio.sleep(slow.get(task_id, 0.0))
        return web.json_response({**ANSWER, "id": task_id})

    async def submit(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with serving(web.get("/v1/videos/{task_id}", poll),
                       web.post("/v1/videos", submit)) as base_url:
        yield base_url


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async for base_url in serve({"task_hung", "task_hung_later"}, {"task_slow": LIMIT * 0.7}):
        async with Transport(base_url, DEMO_KEY, read_timeout=LIMIT) as transport:
            yield Providers(transport).get("octopusx")


async def test_an_answer_that_never_comes_times_out_after_the_limit(provider: Provider) -> None:
    started = time.monotonic()
    with pytest.raises(Timeout, match="did not answer in time"):
        await asyncio.wait_for(provider.poll("task_hung"), 10)
    assert time.monotonic() - started >= LIMIT


async def test_each_request_has_its_own_limit_and_the_others_go_on(provider: Provider) -> None:
    hung = asyncio.ensure_future(provider.poll("task_hung"))
    await asyncio.sleep(LIMIT / 2)
    # Begun later: when the first runs out, these have time left (the watch re-arms for them).
    slow = asyncio.ensure_future(provider.poll("task_slow"))
    later = asyncio.ensure_future(provider.poll("task_hung_later"))
    done = await asyncio.wait_for(asyncio.gather(hung, slow, later, return_exceptions=True), 10)
    assert isinstance(done[0], Timeout) and isinstance(done[2], Timeout)
    assert not isinstance(done[1], BaseException) and done[1].state is TaskState.QUEUED
    assert (await provider.poll("task_ok")).task_id == "task_ok"  # the watch is idle again


async def test_a_cancelled_request_is_cancelled_not_timed_out(provider: Provider) -> None:
    poll = asyncio.ensure_future(provider.poll("task_hung"))
    await asyncio.sleep(LIMIT / 3)
    poll.cancel()  # Ctrl-C
    with pytest.raises(asyncio.CancelledError):
        await poll
    await asyncio.sleep(LIMIT)  # the watch's timer finds nothing left of it to expire
    assert (await provider.poll("task_ok")).task_id == "task_ok"


async def test_an_upload_that_gets_no_answer_times_out_too(provider: Provider) -> None:
    request = ApiRequest(transport="multipart", form={"model": "jimeng-video-3.0",
                                                      "prompt": "cat", "seconds": "5"},
                         files=(FilePart("input_reference", png_bytes(), "cat.png",
                                         "image/png"),))
    with pytest.raises(Timeout):
        await asyncio.wait_for(provider.submit(request, "key-1"), 10)


async def test_ctrl_c_at_the_moment_of_the_cut_stays_a_cancellation() -> None:
    watch = AnswerWatch(0.0)  # every request is overdue at once
    seen: list[bool] = []

    async def request() -> None:
        task = watch.start()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append(watch.timed_out(task))
            raise
        finally:
            watch.end(task)

    task = asyncio.ensure_future(request())
    for _ in range(3):  # the request starts; then the watch's timer cuts it
        await asyncio.sleep(0)
    task.cancel()  # and Ctrl-C comes before the request has run again
    with pytest.raises(asyncio.CancelledError):
        await task
    # Python 3.10 counts no cancellations: there the cut wins (the job is retried, not lost).
    assert seen == [sys.version_info < (3, 11)]
