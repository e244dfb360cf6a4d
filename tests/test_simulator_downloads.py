"""How the simulator serves files: ranges, validators, and the ways a CDN spoils a transfer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from octobatch.simulator import DEMO_KEY, Faults, Simulator

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
BODY = {"model": "omni-fast", "prompt": "Ocean waves", "seconds": "8", "aspect_ratio": "16:9"}
SIZE = 200 * 1024


async def ready_url(sim: Simulator) -> tuple[str, str]:
    """(task id, signed URL) of a finished task."""
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim.base_url}/v1/videos", json=BODY, headers=AUTH) as r:
            task_id = str((await r.json())["id"])
        while True:
            async with s.get(f"{sim.base_url}/v1/videos/{task_id}", headers=AUTH) as r:
                url = (await r.json()).get("video_url")
            if url:
                return task_id, str(url)
            await asyncio.sleep(0.01)


async def fetch(url: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, r.headers.copy(), await r.read()


async def test_range_requests_get_206_with_validators(make_simulator: Any) -> None:
    sim = await make_simulator(video_bytes=SIZE)
    task_id, url = await ready_url(sim)
    whole = sim.expected_video(task_id)
    status, headers, body = await fetch(url)
    assert status == 200 and body == whole and headers["Accept-Ranges"] == "bytes"
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert etag.startswith('"') and modified.endswith("GMT")

    status, headers, body = await fetch(url, Range="bytes=1000-")
    assert status == 206 and body == whole[1000:]
    assert headers["Content-Range"] == f"bytes 1000-{SIZE - 1}/{SIZE}"
    assert headers["ETag"] == etag
    assert (await fetch(url, Range="bytes=10-19"))[2] == whole[10:20]
    assert (await fetch(url, Range="bytes=-5"))[2] == whole[-5:]
    status, headers, _ = await fetch(url, Range=f"bytes={SIZE}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{SIZE}"
    # Several ranges at once are answered with the whole file, as RFC 9110 allows.
    assert (await fetch(url, Range="bytes=0-1,5-6"))[0] == 200


@pytest.mark.parametrize("validator", ["ETag", "Last-Modified"])
async def test_if_range_honours_a_matching_validator_only(make_simulator: Any,
                                                          validator: str) -> None:
    sim = await make_simulator(video_bytes=SIZE)
    task_id, url = await ready_url(sim)
    _, headers, _ = await fetch(url)
    status, _, body = await fetch(url, Range="bytes=500-", **{"If-Range": headers[validator]})
    assert status == 206 and body == sim.expected_video(task_id)[500:]
    stale = '"another-version"' if validator == "ETag" else "Mon, 01 Jan 2001 00:00:00 GMT"
    status, _, body = await fetch(url, Range="bytes=500-", **{"If-Range": stale})
    assert status == 200 and body == sim.expected_video(task_id)


async def test_ignore_range_answers_200_with_the_whole_file(make_simulator: Any) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(ignore_range=True))
    task_id, url = await ready_url(sim)
    status, headers, body = await fetch(url, Range="bytes=1000-")
    assert status == 200 and body == sim.expected_video(task_id)
    assert "Accept-Ranges" not in headers and "Content-Range" not in headers


async def test_cut_chunks_cut_the_connection_and_count_the_bytes_sent(
        make_simulator: Any) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(cut_chunk_rate=1.0))
    task_id, url = await ready_url(sim)
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200 and r.content_length == SIZE
        got = bytearray()
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in r.content.iter_any():
                got += chunk
    # Rate 1: every chunk is cut, so the first one already is, somewhere inside it.
    assert len(got) < 64 * 1024
    assert bytes(got) == sim.expected_video(task_id)[:len(got)]
    assert sim.bytes_sent_per_task[task_id] == len(got)


async def test_cut_chunk_rate_cuts_about_that_fraction_of_chunks(make_simulator: Any) -> None:
    sim = await make_simulator(video_bytes=64 * 1024 * 100, faults=Faults(cut_chunk_rate=0.1))
    _, url = await ready_url(sim)
    sent = []
    for _ in range(20):
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            try:
                sent.append(len(await r.read()))
            except aiohttp.ClientPayloadError:
                sent.append(-1)
    assert sent.count(-1) >= 18  # 0.9**100 of a whole 100-chunk body: almost never


async def test_object_changes_give_a_new_etag_and_new_bytes(make_simulator: Any) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(object_changes=1))
    task_id, url = await ready_url(sim)
    _, first_headers, first = await fetch(url)
    status, headers, body = await fetch(url, Range="bytes=100-",
                                        **{"If-Range": first_headers["ETag"]})
    assert status == 200 and headers["ETag"] != first_headers["ETag"]
    assert headers["Last-Modified"] != first_headers["Last-Modified"]
    assert body != first and body == sim.expected_video(task_id) and len(body) == SIZE
    # One change only: the third request sees the same version as the second.
    assert (await fetch(url))[1]["ETag"] == headers["ETag"]


async def test_url_ttl_cuts_a_transfer_still_running_when_the_link_expires(
        make_simulator: Any) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(
        url_ttl=0.3, url_ttl_cuts_downloads=True, download_bytes_per_second=SIZE))
    _, url = await ready_url(sim)
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    assert (await fetch(url))[0] == 403


async def test_html_page_with_200(make_simulator: Any) -> None:
    sim = await make_simulator(faults=Faults(download_html_first=1))
    _, url = await ready_url(sim)
    status, headers, body = await fetch(url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>")
    assert (await fetch(url))[1]["Content-Type"] == "video/mp4"


async def test_gzip_only_for_clients_that_accept_it(make_simulator: Any) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_gzip=True))
    task_id, url = await ready_url(sim)
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:  # aiohttp asks for gzip by default
            assert r.headers["Content-Encoding"] == "gzip"
            assert r.content_length is not None and r.content_length < SIZE
            assert await r.read() == sim.expected_video(task_id)
        async with s.get(url, headers={"Accept-Encoding": "identity"}) as r:
            assert "Content-Encoding" not in r.headers and r.content_length == SIZE


@pytest.mark.parametrize(("fault", "arrives"), [("overlong", SIZE), ("stall", SIZE // 2)])
async def test_stalling_bodies_go_silent_on_an_open_connection(
        make_simulator: Any, fault: str, arrives: int) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(**{f"download_{fault}_first": 1}))
    _, url = await ready_url(sim)
    got = bytearray()
    timeout = aiohttp.ClientTimeout(sock_read=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:
        assert r.content_length == (SIZE + 1024 if fault == "overlong" else SIZE)
        with pytest.raises(asyncio.TimeoutError):
            async for chunk in r.content.iter_any():
                got += chunk
    assert len(got) == arrives


async def test_requests_and_faults_are_logged_at_info(make_simulator: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(cut_chunk_rate=1.0,
                                                               poll_503_first=1))
    with caplog.at_level(logging.INFO, logger="octobatch.simulator"):
        _, url = await ready_url(sim)
        with pytest.raises(aiohttp.ClientPayloadError):
            await fetch(url, Range="bytes=10-")
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("POST /v1/videos -> 200 task video_") for line in lines)
    assert any(line.endswith("-> 503 (fault: 503)") for line in lines)
    assert any("[bytes=10-] -> 206" in line for line in lines)
    assert any("cut_chunk: cut the connection after" in line for line in lines)
    assert all(DEMO_KEY not in line for line in lines)
