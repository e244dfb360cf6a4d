"""The simulator's routes, auth, task progression and video files, through a real client."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from octobatch.simulator import DEMO_KEY, Faults, Simulator
from octobatch.simulator.video import base_clip, video_for

OMNI_BODY = {"model": "omni-fast", "prompt": "Ocean waves at golden hour", "seconds": "8",
             "aspect_ratio": "16:9", "resolution": "720p"}


async def submit(session: aiohttp.ClientSession, sim: Simulator, body: dict[str, Any] | None = None,
                 **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {DEMO_KEY}", **kwargs.pop("headers", {})}
    async with session.post(f"{sim.base_url}/v1/videos", json=body or OMNI_BODY,
                            headers=headers, **kwargs) as r:
        return r.status, await r.json()


async def poll(session: aiohttp.ClientSession, sim: Simulator, task_id: str) -> tuple[int, Any]:
    async with session.get(f"{sim.base_url}/v1/videos/{task_id}",
                           headers={"Authorization": f"Bearer {DEMO_KEY}"}) as r:
        return r.status, await r.json()


async def test_submit_returns_the_documented_video_object(simulator: Simulator) -> None:
    async with aiohttp.ClientSession() as s:
        status, body = await submit(s, simulator)
    assert status == 200
    assert set(body) == {"id", "task_id", "object", "model", "status", "progress",
                         "created_at", "video_url"}
    assert body["id"] == body["task_id"] and body["id"].startswith("video_")
    assert (body["object"], body["model"], body["status"], body["progress"], body["video_url"]) \
        == ("video", "omni-fast", "queued", 0, "")
    assert isinstance(body["created_at"], int) and body["created_at"] > 1_700_000_000
    assert simulator.tasks[body["id"]].params["seconds"] == "8"


async def test_task_progresses_with_the_clock_then_serves_a_playable_mp4(
        make_simulator: Any, manual_clock: Any, mp4_boxes: Any) -> None:
    clock = manual_clock
    sim = await make_simulator(latency=10.0, clock=clock)
    async with aiohttp.ClientSession() as s:
        _, created = await submit(s, sim)
        task_id = created["id"]
        seen = []
        for t in (0.0, 1.0, 2.5, 5.0, 9.95, 10.0):
            clock.now = t
            _, body = await poll(s, sim, task_id)
            seen.append((body["status"], body["progress"]))
        assert seen == [("queued", 0), ("queued", 0), ("in_progress", 25), ("in_progress", 50),
                        ("in_progress", 99), ("completed", 100)]
        url = body["video_url"]
        assert url.startswith(f"{sim.base_url}/files/") and url.endswith(".mp4")
        async with s.get(url) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "video/mp4"
            data = await r.read()
            assert int(r.headers["Content-Length"]) == len(data)
    assert data == sim.expected_video(task_id)
    boxes = mp4_boxes(data)
    assert [kind for kind, _ in boxes][:1] == ["ftyp"]
    assert {"moov", "mdat"} <= {kind for kind, _ in boxes}
    assert task_id.encode() in data
    assert sim.polls_per_task[task_id] == 6 and sim.downloads_per_task[task_id] == 1


async def test_each_task_gets_different_bytes_and_video_bytes_pads_them(
        make_simulator: Any, mp4_boxes: Any) -> None:
    sim = await make_simulator(latency=0, video_bytes=200_000)
    async with aiohttp.ClientSession() as s:
        ids = [(await submit(s, sim))[1]["id"] for _ in range(2)]
        bodies = []
        for task_id in ids:
            async with s.get(f"{sim.base_url}/v1/videos/{task_id}/content",
                             headers={"Authorization": f"Bearer {DEMO_KEY}"}) as r:
                assert r.status == 200
                bodies.append(await r.read())
    assert bodies[0] != bodies[1]
    assert all(len(b) == 200_000 for b in bodies)
    assert all(mp4_boxes(b)[-1][0] == "free" for b in bodies)
    assert bodies[0].startswith(base_clip())


def test_video_without_size_is_the_clip_plus_one_small_box(mp4_boxes: Any) -> None:
    data = video_for("video_x")
    assert mp4_boxes(data)[-1] == ("free", len(data) - len(base_clip()))
    assert len(data) < 64 * 1024


async def test_content_is_400_until_completed(make_simulator: Any, manual_clock: Any) -> None:
    clock = manual_clock
    sim = await make_simulator(latency=5.0, clock=clock)
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    async with aiohttp.ClientSession() as s:
        _, created = await submit(s, sim)
        url = f"{sim.base_url}/v1/videos/{created['id']}/content"
        async with s.get(url, headers=headers) as r:
            assert r.status == 400
            assert await r.json() == {"code": "task_not_completed", "data": None,
                                      "message": "任务尚未完成 (the video is not ready)"}
        clock.now += 5.0
        async with s.get(url, headers=headers) as r:
            assert r.status == 200
            assert await r.read() == sim.expected_video(created["id"])


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", f"Basic {DEMO_KEY}", DEMO_KEY])
async def test_api_routes_need_the_bearer_key_and_never_echo_it(
        simulator: Simulator, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with aiohttp.ClientSession() as s:
        _, created = await submit(s, simulator)
        requests = [("POST", "/v1/videos"), ("GET", f"/v1/videos/{created['id']}"),
                    ("GET", f"/v1/videos/{created['id']}/content")]
        for method, path in requests:
            async with s.request(method, simulator.base_url + path, headers=headers,
                                 json=OMNI_BODY) as r:
                assert r.status == 401
                text = await r.text()
                assert r.content_type == "application/json"
                error = (await r.json())["error"]
                assert error["code"] == "invalid_api_key" and error["message"]
                assert DEMO_KEY not in text and "wrong-key" not in text
    assert len(simulator.tasks) == 1


async def test_unknown_task_is_400_task_not_exist(simulator: Simulator) -> None:
    async with aiohttp.ClientSession() as s:
        status, body = await poll(s, simulator, "video_nope")
    assert status == 400
    assert body["code"] == "task_not_exist" and body["data"] is None


async def test_adopting_simulator_serves_unknown_tasks_as_finished(make_simulator: Any) -> None:
    """What `run --simulate` relies on to resume the tasks of an interrupted demo run."""
    sim = await make_simulator(adopt_unknown_tasks=True)
    async with aiohttp.ClientSession() as s:
        status, body = await poll(s, sim, "video_from_last_run")
        assert status == 200 and body["status"] == "completed" and body["video_url"]
        async with s.get(body["video_url"]) as r:
            assert r.status == 200
            assert await r.read() == sim.expected_video("video_from_last_run")
    assert sum(sim.tasks_created_per_prompt().values()) == 0


async def test_task_ids_with_colons_are_url_decoded(make_simulator: Any) -> None:
    sim = await make_simulator(latency=0, faults=Faults(task_id_prefix="task:v1:"))
    async with aiohttp.ClientSession() as s:
        _, created = await submit(s, sim)
        task_id = created["id"]
        assert task_id.startswith("task:v1:")
        status, body = await poll(s, sim, task_id.replace(":", "%3A"))
    assert status == 200 and body["id"] == task_id and body["status"] == "completed"
    assert sim.polls_per_task[task_id] == 1


async def test_fail_marker_and_fail_rate_fail_tasks_with_an_error(make_simulator: Any) -> None:
    sim = await make_simulator(latency=0, fail_rate=0.5, seed=7)
    async with aiohttp.ClientSession() as s:
        _, marked = await submit(s, sim, {**OMNI_BODY, "prompt": "waves [fail]"})
        _, body = await poll(s, sim, marked["id"])
        assert body["status"] == "failed"
        assert set(body["error"]) == {"message", "code"} and body["error"]["message"]
        outcomes = []
        for i in range(40):
            _, created = await submit(s, sim, {**OMNI_BODY, "prompt": f"p{i}"})
            outcomes.append((await poll(s, sim, created["id"]))[1]["status"])
    assert 8 <= outcomes.count("failed") <= 32 and outcomes.count("completed") >= 8
    assert "error" not in (await _completed_object(sim))


async def _completed_object(sim: Simulator) -> dict[str, Any]:
    task_id = next(t.id for t in sim.tasks.values() if t.outcome == "completed")
    async with aiohttp.ClientSession() as s:
        return (await poll(s, sim, task_id))[1]


async def test_stuck_marker_never_finishes(make_simulator: Any, manual_clock: Any) -> None:
    clock = manual_clock
    sim = await make_simulator(latency=1.0, clock=clock)
    async with aiohttp.ClientSession() as s:
        _, created = await submit(s, sim, {**OMNI_BODY, "prompt": "waves [stuck]"})
        clock.now += 1e6
        _, body = await poll(s, sim, created["id"])
    assert body["status"] == "in_progress"


async def test_jitter_varies_durations_reproducibly(make_simulator: Any) -> None:
    durations = []
    for _ in range(2):
        sim = await make_simulator(latency=10.0, jitter=4.0, seed=99)
        async with aiohttp.ClientSession() as s:
            for _ in range(5):
                await submit(s, sim)
        durations.append([t.duration for t in sim.tasks.values()])
    assert durations[0] == durations[1]
    assert all(6.0 <= d <= 14.0 for d in durations[0]) and len(set(durations[0])) == 5


async def test_unknown_routes_answer_in_the_openai_and_platform_shapes(
        simulator: Simulator) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{simulator.base_url}/v1/nothing") as r:
            assert r.status == 404
            assert (await r.json())["error"]["message"] == "Invalid URL (GET /v1/nothing)"
        async with s.get(f"{simulator.base_url}/api/nothing") as r:
            assert r.status == 404
            body = await r.json()
            assert body["success"] is False and body["message"]
        async with s.get(f"{simulator.base_url}/api/status") as r:
            assert r.status == 200 and (await r.json())["success"] is True
        async with s.get(f"{simulator.base_url}/files/0123.mp4") as r:
            assert r.status == 404 and "NoSuchKey" in await r.text()


async def test_requests_are_recorded_for_inspection(simulator: Simulator) -> None:
    async with aiohttp.ClientSession() as s:
        _, created = await submit(s, simulator, headers={"Idempotency-Key": "k-1"})
        await poll(s, simulator, created["id"])
    submit_record, poll_record = simulator.requests
    assert (submit_record.kind, submit_record.task_id, submit_record.model, submit_record.prompt,
            submit_record.idempotency_key, submit_record.status) \
        == ("submit", created["id"], "omni-fast", OMNI_BODY["prompt"], "k-1", 200)
    assert (poll_record.kind, poll_record.task_id, poll_record.status) \
        == ("poll", created["id"], 200)
    assert simulator.tasks_created_per_prompt() == {OMNI_BODY["prompt"]: 1}
    assert simulator.peak_in_flight == 1


async def test_peak_in_flight_counts_unfinished_tasks(make_simulator: Any,
                                                      manual_clock: Any) -> None:
    clock = manual_clock
    sim = await make_simulator(latency=10.0, clock=clock)
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            await submit(s, sim)
        clock.now += 10.0
        for _ in range(2):
            await submit(s, sim)
    assert sim.peak_in_flight == 3 and sim.in_flight() == 2


def test_simulator_thread_serves_synchronous_callers(simulator_thread: Any) -> None:
    import json
    import urllib.request

    sim = simulator_thread(latency=0)
    request = urllib.request.Request(
        f"{sim.base_url}/v1/videos", data=json.dumps(OMNI_BODY).encode(), method="POST",
        headers={"Authorization": f"Bearer {DEMO_KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert json.load(r)["status"] == "queued"
    assert len(sim.tasks) == 1
