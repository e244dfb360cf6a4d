"""Each injected fault and vocabulary variant, observed through a plain aiohttp client."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from octobatch.simulator import DEMO_KEY, Faults, Simulator

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
BODY = {"model": "omni-fast", "prompt": "Ocean waves", "seconds": "8", "aspect_ratio": "16:9"}


async def call(method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.request(method, url, **kwargs) as r:
        return r.status, dict(r.headers), await r.read()


async def submit(sim: Simulator, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return await call("POST", f"{sim.base_url}/v1/videos", json=BODY, headers={**AUTH, **headers})


async def new_task(sim: Simulator) -> str:
    async with aiohttp.ClientSession() as s, \
            s.post(f"{sim.base_url}/v1/videos", json=BODY, headers=AUTH) as r:
        assert r.status == 200
        return str((await r.json())["id"])


async def poll_json(sim: Simulator, task_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, \
            s.get(f"{sim.base_url}/v1/videos/{task_id}", headers=AUTH) as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


# -- 429 / 5xx / dropped connections, per route ---------------------------------------------

async def test_submit_first_n_faults_run_in_order_then_behave(make_simulator: Any) -> None:
    sim = await make_simulator(faults=Faults(submit_429_first=2, submit_429_bare_first=1,
                                             submit_500_first=1, submit_503_first=1,
                                             retry_after=3))
    answers = [await submit(sim) for _ in range(6)]
    assert [status for status, _, _ in answers] == [429, 429, 429, 500, 503, 200]
    assert answers[0][1]["Retry-After"] == "3" and answers[1][1]["Retry-After"] == "3"
    assert "Retry-After" not in answers[2][1]
    assert b'"code": "rate_limit_exceeded"' in answers[0][2]
    # 429, 500 and 503 created nothing: only the last request became a task.
    assert sim.tasks_created_per_prompt() == {"Ocean waves": 1}
    assert [r.status for r in sim.requests] == [429, 429, 429, 500, 503, 200]


async def test_submit_502_creates_the_task_behind_the_error(make_simulator: Any) -> None:
    sim = await make_simulator(faults=Faults(submit_502_first=1))
    status, _, body = await submit(sim)
    assert status == 502 and b"bad_gateway" in body
    (task_id,) = sim.tasks
    assert sim.requests[0].task_id == task_id


async def test_submit_drop_creates_the_task_but_never_answers(make_simulator: Any) -> None:
    sim = await make_simulator(faults=Faults(submit_drop_first=1))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(sim, **{"Idempotency-Key": "job-1"})
    (task,) = sim.tasks.values()
    assert task.idempotency_key == "job-1"
    assert (sim.requests[0].status, sim.requests[0].task_id) == (0, task.id)
    await submit(sim, **{"Idempotency-Key": "job-1"})
    # Retrying the same job after a drop pays twice: the provider documents no idempotency.
    assert sim.tasks_created_per_prompt() == {"Ocean waves": 2}


async def test_honour_idempotency_returns_the_same_task(make_simulator: Any) -> None:
    sim = await make_simulator(faults=Faults(submit_drop_first=1, honour_idempotency=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(sim, **{"Idempotency-Key": "job-1"})
    status, _, body = await submit(sim, **{"Idempotency-Key": "job-1"})
    assert status == 200 and next(iter(sim.tasks)).encode() in body
    other = await submit(sim, **{"Idempotency-Key": "job-2"})
    assert other[0] == 200
    assert sim.tasks_created_per_prompt() == {"Ocean waves": 2} and len(sim.tasks) == 2


@pytest.mark.parametrize(("fault", "status"), [("429", 429), ("429_bare", 429), ("500", 500),
                                               ("502", 502), ("503", 503)])
async def test_poll_faults(make_simulator: Any, fault: str, status: int) -> None:
    settings: dict[str, Any] = {f"poll_{fault}_first": 1}
    sim = await make_simulator(faults=Faults(**settings))
    task_id = await new_task(sim)
    first = await call("GET", f"{sim.base_url}/v1/videos/{task_id}", headers=AUTH)
    second = await call("GET", f"{sim.base_url}/v1/videos/{task_id}", headers=AUTH)
    assert (first[0], second[0]) == (status, 200)
    assert ("Retry-After" in first[1]) == (fault == "429")
    assert b'"error"' in first[2]
    assert sim.polls_per_task[task_id] == 2


# aiohttp itself retries an idempotent request once after a disconnect, so a client built on
# it only sees the second of two drops in a row.
async def test_poll_drop(make_simulator: Any) -> None:
    sim = await make_simulator(faults=Faults(poll_drop_first=2))
    task_id = await new_task(sim)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call("GET", f"{sim.base_url}/v1/videos/{task_id}", headers=AUTH)
    assert [r.status for r in sim.requests if r.kind == "poll"] == [0, 0]
    assert (await poll_json(sim, task_id))["id"] == task_id


async def completed_url(sim: Simulator) -> tuple[str, str]:
    task_id = await new_task(sim)
    return task_id, (await poll_json(sim, task_id))["video_url"]


@pytest.mark.parametrize("fault", ["429", "500", "502", "503"])
async def test_download_errors_on_files_and_content(make_simulator: Any, fault: str) -> None:
    settings: dict[str, Any] = {f"download_{fault}_first": 2}
    sim = await make_simulator(latency=0, faults=Faults(**settings))
    task_id, url = await completed_url(sim)
    content = f"{sim.base_url}/v1/videos/{task_id}/content"
    assert (await call("GET", url))[0] == int(fault[:3])
    assert (await call("GET", content, headers=AUTH))[0] == int(fault[:3])
    assert (await call("GET", url))[2] == sim.expected_video(task_id)
    assert sim.downloads_per_task[task_id] == 3
    assert [r.kind for r in sim.requests[-3:]] == ["download", "content", "download"]


async def test_download_drop(make_simulator: Any) -> None:
    sim = await make_simulator(latency=0, faults=Faults(download_drop_first=2))
    task_id, url = await completed_url(sim)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call("GET", url)
    assert [r.status for r in sim.requests if r.kind == "download"] == [0, 0]
    assert (await call("GET", url))[2] == sim.expected_video(task_id)


async def test_truncated_download_announces_more_than_it_sends(make_simulator: Any) -> None:
    sim = await make_simulator(latency=0, faults=Faults(download_truncate_first=1))
    task_id, url = await completed_url(sim)
    expected = sim.expected_video(task_id)
    received = bytearray()
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200 and r.content_length == len(expected)
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in r.content.iter_any():
                received += chunk
    assert 0 < len(received) < len(expected) and expected.startswith(received)
    assert (await call("GET", url))[2] == expected


async def test_probabilistic_faults_are_reproducible_from_the_seed(make_simulator: Any) -> None:
    faults = Faults(poll_429=0.2, poll_500=0.2, poll_503=0.1)
    runs = []
    for _ in range(2):
        sim = await make_simulator(seed=42, faults=faults)
        task_id = await new_task(sim)
        async with aiohttp.ClientSession() as s:
            statuses = []
            for _ in range(100):
                async with s.get(f"{sim.base_url}/v1/videos/{task_id}", headers=AUTH) as r:
                    statuses.append(r.status)
        runs.append(statuses)
    assert runs[0] == runs[1]
    assert 25 <= sum(status != 200 for status in runs[0]) <= 75
    assert {429, 500, 503, 200} == set(runs[0])


def test_fault_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="poll_500 must be a probability"):
        Faults(poll_500=1.5)
    with pytest.raises(ValueError, match="submit fault probabilities add up to more than 1"):
        Faults(submit_429=0.6, submit_drop=0.6)
    with pytest.raises(ValueError, match="download_truncate_first must be >= 0"):
        Faults(download_truncate_first=-1)
    with pytest.raises(ValueError, match="url_ttl must be >= 0"):
        Faults(url_ttl=-1)


# -- latency, throttling, expiry, concurrency -----------------------------------------------

async def test_response_delay_holds_answers_back(make_simulator: Any) -> None:
    sim = await make_simulator(faults=Faults(response_delay=0.2))
    started = time.monotonic()
    assert (await submit(sim))[0] == 200
    assert time.monotonic() - started >= 0.2


async def test_slow_downloads_are_throttled(make_simulator: Any) -> None:
    sim = await make_simulator(latency=0, video_bytes=40_000,
                               faults=Faults(download_bytes_per_second=100_000))
    task_id, url = await completed_url(sim)
    started = time.monotonic()
    assert (await call("GET", url))[2] == sim.expected_video(task_id)
    assert time.monotonic() - started >= 0.35  # 40 kB at 100 kB/s


async def test_urls_expire_and_a_new_poll_gives_a_fresh_one(make_simulator: Any,
                                                            manual_clock: Any) -> None:
    clock = manual_clock
    sim = await make_simulator(latency=1.0, clock=clock, faults=Faults(url_ttl=60))
    task_id = await new_task(sim)
    clock.now = 1.0
    first = (await poll_json(sim, task_id))["video_url"]
    clock.now = 30.0
    assert (await poll_json(sim, task_id))["video_url"] == first  # still valid: same link
    clock.now = 61.0
    status, _, body = await call("GET", first)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    fresh = (await poll_json(sim, task_id))["video_url"]
    assert fresh != first
    assert (await call("GET", fresh))[2] == sim.expected_video(task_id)
    assert (await call("GET", first))[0] == 403


async def test_concurrency_limit_per_key(make_simulator: Any, manual_clock: Any) -> None:
    clock = manual_clock
    sim = await make_simulator(latency=10.0, clock=clock, faults=Faults(concurrency_limit=2))
    assert [(await submit(sim))[0] for _ in range(2)] == [200, 200]
    status, _, body = await submit(sim)
    assert status == 429 and b"token_concurrency_limit_reached" in body
    assert len(sim.tasks) == 2
    clock.now = 10.0
    assert (await submit(sim))[0] == 200
    assert sim.peak_in_flight == 2


# -- vocabulary variants --------------------------------------------------------------------

@pytest.mark.parametrize(("faults", "running", "completed"), [
    (Faults(), "in_progress", "completed"),
    (Faults(status_running="processing", status_completed="succeeded"), "processing",
     "succeeded"),
    (Faults(status_running="running", status_upper=True), "RUNNING", "COMPLETED"),
])
async def test_status_words(make_simulator: Any, manual_clock: Any, faults: Faults, running: str,
                            completed: str) -> None:
    clock = manual_clock
    sim = await make_simulator(latency=10.0, clock=clock, faults=faults)
    task_id = await new_task(sim)
    clock.now = 5.0
    assert (await poll_json(sim, task_id))["status"] == running
    clock.now = 10.0
    assert (await poll_json(sim, task_id))["status"] == completed


@pytest.mark.parametrize(("style", "shown"), [("int", 50), ("string", "50"), ("percent", "50%")])
async def test_progress_styles(make_simulator: Any, manual_clock: Any, style: Any,
                               shown: object) -> None:
    clock = manual_clock
    sim = await make_simulator(latency=10.0, clock=clock, faults=Faults(progress_style=style))
    task_id = await new_task(sim)
    clock.now = 5.0
    assert (await poll_json(sim, task_id))["progress"] == shown


@pytest.mark.parametrize("location", ["video_url", "metadata", "data", "content"])
async def test_result_url_locations(make_simulator: Any, location: Any) -> None:
    sim = await make_simulator(latency=0, faults=Faults(url_location=location))
    task_id = await new_task(sim)
    body = await poll_json(sim, task_id)
    found = {"video_url": body["video_url"] or None,
             "metadata": body.get("metadata", {}).get("url"),
             "data": (body.get("data") or [{}])[0].get("url"),
             "content": None}
    assert [where for where, url in found.items() if url] == \
        ([] if location == "content" else [location])
    url = found[location] or f"{sim.base_url}/v1/videos/{task_id}/content"
    assert (await call("GET", url, headers=AUTH))[2] == sim.expected_video(task_id)


async def test_empty_error_object_while_running(make_simulator: Any, manual_clock: Any) -> None:
    clock = manual_clock
    sim = await make_simulator(latency=10.0, clock=clock,
                               faults=Faults(empty_error_while_running=True))
    task_id = await new_task(sim)
    clock.now = 5.0
    assert (await poll_json(sim, task_id))["error"] == {}
    clock.now = 10.0
    assert "error" not in await poll_json(sim, task_id)
