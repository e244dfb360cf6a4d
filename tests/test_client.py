"""The API client against the real simulator on loopback: bodies, vocabulary, typed errors."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from engine_helpers import png_bytes

from octobatch.jobs import ApiRequest, FilePart
from octobatch.providers import Provider, TaskState, VideoStatus, connect
from octobatch.providers.base import parse_progress
from octobatch.providers.octopusx import parse_error_body
from octobatch.simulator import DEMO_KEY, Faults, Simulator
from octobatch.transport import (
    Ambiguous,
    AuthError,
    BadRequest,
    ConnectionFailed,
    RateLimited,
    ServerError,
    TaskNotFound,
    TruncatedDownload,
    UrlExpired,
)

OMNI = ApiRequest(transport="json", json={"model": "omni-fast", "prompt": "waves",
                                          "seconds": "8", "aspect_ratio": "16:9"})


async def wait_done(client: Provider, task_id: str) -> VideoStatus:
    for _ in range(200):
        video = await client.poll(task_id)
        if video.state in (TaskState.COMPLETED, TaskState.FAILED):
            return video
        await asyncio.sleep(0.01)
    raise AssertionError("task never finished")


async def test_json_submit_poll_download(simulator: Simulator, tmp_path: Path) -> None:
    async with connect(simulator.base_url, DEMO_KEY) as client:
        submitted = await client.submit(OMNI, "key-1")
        assert submitted.state is TaskState.QUEUED
        video = await wait_done(client, submitted.task_id)
        assert video.state is TaskState.COMPLETED and video.video_url
        got = await client.download(video.video_url, tmp_path / "out.mp4")
    expected = simulator.expected_video(submitted.task_id)
    assert (tmp_path / "out.mp4").read_bytes() == expected
    assert got.bytes == len(expected)
    submits = [r for r in simulator.requests if r.kind == "submit"]
    assert [(r.idempotency_key, r.model, r.status) for r in submits] == [
        ("key-1", "omni-fast", 200)]


async def test_multipart_submit_uploads_the_reference_image(
    simulator: Simulator, tmp_path: Path
) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(png_bytes())
    request = ApiRequest(
        transport="multipart",
        form={"model": "jimeng-video-3.0", "prompt": "猫咪在草地上追逐蝴蝶", "seconds": "5",
              "size": "1280x720"},
        files=(FilePart("input_reference", image.read_bytes(), "cat.png", "image/png"),),
    )
    async with connect(simulator.base_url, DEMO_KEY) as client:
        submitted = await client.submit(request, "key-2")
    task = simulator.tasks[submitted.task_id]
    assert task.prompt == "猫咪在草地上追逐蝴蝶"
    assert task.params["input_reference"].startswith("png")


@pytest.mark.parametrize("faults", [
    Faults(status_running="processing", status_completed="succeeded"),
    Faults(status_running="running", status_upper=True),
    Faults(url_location="metadata", progress_style="string"),
    Faults(url_location="data", progress_style="percent"),
    Faults(url_location="content", empty_error_while_running=True),
    Faults(task_id_prefix="task:a/b:"),
], ids=["succeeded", "upper", "metadata", "data", "content", "odd-task-id"])
async def test_every_vocabulary_variant_is_understood(
    make_simulator: Any, tmp_path: Path, faults: Faults
) -> None:
    sim = await make_simulator(faults=faults, latency=0.3)  # running long enough to be seen
    seen: set[TaskState] = set()
    async with connect(sim.base_url, DEMO_KEY) as client:
        task_id = (await client.submit(OMNI, "k")).task_id
        while True:
            video = await client.poll(task_id)
            seen.add(video.state)
            assert video.error is None  # an empty error object while running is not a failure
            if video.state is TaskState.COMPLETED:
                break
            assert video.progress is not None
            await asyncio.sleep(0.01)
        await client.download(video.video_url or "", tmp_path / "v.mp4")
    assert TaskState.RUNNING in seen and TaskState.UNKNOWN not in seen
    assert (tmp_path / "v.mp4").read_bytes() == sim.expected_video(task_id)


async def test_failed_task_carries_the_providers_error(simulator: Simulator) -> None:
    request = ApiRequest(transport="json", json={**OMNI.json, "prompt": "boom [fail]"})  # type: ignore[dict-item]
    async with connect(simulator.base_url, DEMO_KEY) as client:
        video = await wait_done(client, (await client.submit(request, "k")).task_id)
    assert video.state is TaskState.FAILED
    assert video.error is not None and video.error["code"] == "generation_failed"
    assert "视频生成失败" in video.error["message"]


async def test_bad_key_is_an_auth_error_that_never_shows_the_key(simulator: Simulator) -> None:
    secret = "sk-live-very-secret-123"
    async with connect(simulator.base_url, secret) as client:
        with pytest.raises(AuthError) as caught:
            await client.submit(OMNI, "k")
    assert caught.value.cause == "key" and caught.value.status == 401
    assert secret not in str(caught.value) and "OCTOPUSX_API_KEY" in str(caught.value)


@pytest.mark.parametrize(("faults", "error", "retry_after"), [
    (Faults(submit_429_first=1, retry_after=7), RateLimited, 7.0),
    (Faults(submit_429_bare_first=1), RateLimited, None),
    (Faults(submit_503_first=1), ServerError, None),
    (Faults(submit_502_first=1), ServerError, None),
    (Faults(submit_drop_first=1), Ambiguous, None),
], ids=["429", "429-bare", "503", "502", "drop"])
async def test_submit_faults_map_to_typed_errors(
    make_simulator: Any, faults: Faults, error: type[Exception], retry_after: float | None
) -> None:
    sim = await make_simulator(faults=faults)
    async with connect(sim.base_url, DEMO_KEY) as client:
        with pytest.raises(error) as caught:
            await client.submit(OMNI, "k")
        if isinstance(caught.value, RateLimited):
            assert caught.value.retry_after == retry_after
        assert (await client.submit(OMNI, "k2")).state is TaskState.QUEUED  # then it behaves


async def test_refused_connection_means_nothing_was_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the client connects
    async with connect(f"http://127.0.0.1:{port}", DEMO_KEY) as client:
        with pytest.raises(ConnectionFailed):
            await client.submit(OMNI, "k")


async def test_unknown_task_and_bad_request(simulator: Simulator) -> None:
    async with connect(simulator.base_url, DEMO_KEY) as client:
        with pytest.raises(TaskNotFound) as caught:
            await client.poll("video_nope")
        assert caught.value.code == "task_not_exist" and "任务不存在" in caught.value.message
        bad = ApiRequest(transport="json", json={"model": "omni-fast", "prompt": "x",
                                                 "seconds": "8", "aspect_ratio": "16:9",
                                                 "video": "https://example.com/a.mp4"})
        with pytest.raises(BadRequest) as refused:
            await client.submit(bad, "k")
        assert not isinstance(refused.value, TaskNotFound) and refused.value.status == 400


async def test_truncated_and_expired_downloads(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(faults=Faults(download_truncate_first=1, url_ttl=0.3),
                               video_bytes=300_000)
    async with connect(sim.base_url, DEMO_KEY) as client:
        video = await wait_done(client, (await client.submit(OMNI, "k")).task_id)
        with pytest.raises(TruncatedDownload):
            await client.download(video.video_url or "", tmp_path / "v.mp4")
        await asyncio.sleep(0.35)
        with pytest.raises(UrlExpired):
            await client.download(video.video_url or "", tmp_path / "v.mp4")
        fresh = await client.poll(video.task_id)
        assert fresh.video_url != video.video_url
        got = await client.download(fresh.video_url or "", tmp_path / "v.mp4")
    assert got.bytes == 300_000
    assert (tmp_path / "v.mp4").read_bytes() == sim.expected_video(video.task_id)


def test_error_bodies_of_all_three_shapes() -> None:
    assert parse_error_body('{"error": {"message": "无效的令牌", "type": "t", "code": "bad"}}') \
        == ("bad", "无效的令牌")
    assert parse_error_body('{"code": "task_not_exist", "message": "任务不存在", "data": null}') \
        == ("task_not_exist", "任务不存在")
    assert parse_error_body('{"success": false, "message": "余额不足"}') == (None, "余额不足")
    assert parse_error_body("<html>Bad Gateway</html>") == (None, "<html>Bad Gateway</html>")


@pytest.mark.parametrize(("raw", "value"), [
    (50, 50), ("50", 50), ("50%", 50), (" 7 % ", 7), (99.6, 99), (None, None), ("soon", None),
    (True, None), (150, 100),
])
def test_progress_forms(raw: object, value: int | None) -> None:
    assert parse_progress(raw) == value


@pytest.mark.parametrize(("status", "body", "cause", "says"), [
    (401, {"error": {"message": "令牌额度已用尽 (quota exhausted)", "type": "new_api_error",
                     "code": "insufficient_quota"}}, "quota", "quota is exhausted"),
    (403, {"success": False, "message": "用户余额不足"}, "balance", "balance is insufficient"),
], ids=["401-quota", "403-balance"])
async def test_auth_failures_name_their_cause(tmp_path: Path, status: int, body: dict[str, Any],
                                              cause: str, says: str) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/v1/videos", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with connect(f"http://127.0.0.1:{port}", "sk-secret-1") as client:
            with pytest.raises(AuthError) as caught:
                await client.submit(OMNI, "k")
    finally:
        await runner.cleanup()
    assert caught.value.cause == cause and says in str(caught.value)
    assert "sk-secret-1" not in str(caught.value)


async def test_an_endless_answer_is_cut_at_the_answer_bound() -> None:
    # An endless JSON body once reached 4.7 GB; it must be cut near MAX_ANSWER_BYTES (1 MiB).
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)  # chunked: no length to refuse up front
        chunk = b'{"id": "task_x", "pad": "' + b"x" * 65_536
        try:
            while sent < 256 * 1024 * 1024:  # a broken client fails the test, not the machine
                await response.write(chunk)
                sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        return response

    app = web.Application()
    app.router.add_get("/v1/videos/{task_id}", endless)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with connect(f"http://127.0.0.1:{port}", DEMO_KEY) as client:
            with pytest.raises(ServerError, match="ran past 1048576 bytes"):
                await client.poll("task_x")
    finally:
        await runner.cleanup()
    assert sent < 16 * 1024 * 1024, sent  # the client's buffers, not the whole stream
