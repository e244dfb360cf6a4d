"""The outage fault and the key-usage route, observed through a plain aiohttp client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from octobatch.simulator import DEMO_KEY, Faults, KeyUsage, Simulator

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
BODY = {"model": "omni-fast", "prompt": "Ocean waves", "seconds": "8", "aspect_ratio": "16:9"}


async def new_task(client: aiohttp.ClientSession, sim: Simulator) -> str:
    async with client.post(f"{sim.base_url}/v1/videos", json=BODY, headers=AUTH) as r:
        assert r.status == 200
        return str((await r.json())["id"])


async def poll_status(client: aiohttp.ClientSession, sim: Simulator, task_id: str) -> int:
    async with client.get(f"{sim.base_url}/v1/videos/{task_id}", headers=AUTH) as r:
        await r.read()
        return r.status


# -- outages -------------------------------------------------------------------------------

async def test_outage_refuses_connections_drops_kept_alive_ones_and_keeps_the_tasks(
        make_simulator: Any) -> None:
    sim = await make_simulator()
    async with aiohttp.ClientSession() as client:
        task_id = await new_task(client, sim)
        assert await poll_status(client, sim, task_id) == 200  # a kept-alive connection now
        await sim.begin_outage()
        with pytest.raises(aiohttp.ClientConnectorError):
            await poll_status(client, sim, task_id)
        await sim.end_outage()
        # Same address, same port, same task.
        assert await poll_status(client, sim, task_id) == 200
    assert len(sim.outages) == 1 and sim.outages[0][0] < sim.outages[0][1]
    assert [r.kind for r in sim.requests] == ["submit", "poll", "poll"]


async def test_outage_cuts_a_download_in_flight(make_simulator: Any) -> None:
    sim = await make_simulator(video_bytes=64 * 1024,
                               faults=Faults(download_bytes_per_second=64 * 1024))
    async with aiohttp.ClientSession() as client:
        task_id = await new_task(client, sim)
        await asyncio.sleep(0.1)
        async with client.get(f"{sim.base_url}/v1/videos/{task_id}/content",
                               headers=AUTH) as r:
            assert r.status == 200
            first = await r.content.readany()
            outage = asyncio.create_task(sim.outage(0.05))
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        await outage
        assert 0 < len(first) < 64 * 1024
        assert await poll_status(client, sim, task_id) == 200


class LoopLag:
    """How late this event loop wakes a sleeper, at worst, while it runs: on a loaded machine
    every timer fires late by about that much, the simulator's outage timer included."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.ensure_future(self._probe())

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - before - 0.01)

    def stop(self) -> None:
        self._task.cancel()


async def test_scheduled_outage_from_faults(make_simulator: Any) -> None:
    lag = LoopLag()
    sim = await make_simulator(faults=Faults(outage_at=0.05, outage_seconds=0.3))
    refused = answered_after = 0
    # Wait for the outage to come and go (the deadline only stops a hang).
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        while not answered_after and time.monotonic() < deadline:
            try:
                async with s.get(f"{sim.base_url}/api/status") as r:
                    assert r.status == 200
                    answered_after += refused > 0
            except aiohttp.ClientConnectorError:
                refused += 1
            await asyncio.sleep(0.01)
    lag.stop()
    assert refused > 0 and answered_after > 0
    (start, end), = sim.outages
    # As long as asked: late only by as much as this loop was slow to wake anyone.
    assert 0.25 < end - start < 0.5 + lag.worst, (end - start, lag.worst)


async def test_repeated_outages(make_simulator: Any) -> None:
    sim = await make_simulator(faults=Faults(outage_at=0.0, outage_seconds=0.05,
                                             outage_every=0.15))
    deadline = time.monotonic() + 30
    while len(sim.outages) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(sim.outages) >= 2
    assert all(end - start >= 0.05 for start, end in sim.outages if end != float("inf"))
    starts = [start for start, _ in sim.outages]
    # `outage_every` is from one start to the next (a thousandth spares float rounding).
    assert all(later - earlier > 0.149 for earlier, later in zip(starts, starts[1:]))


def test_outage_scheduled_from_another_thread(simulator_thread: Any) -> None:
    import urllib.error
    import urllib.request

    sim = simulator_thread()
    url = f"{sim.base_url}/api/status"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return bool(answer.status == 200)
        except urllib.error.URLError:
            return False

    assert answers()
    sim.schedule_outage(0.0, 0.3)
    seen = []  # what each request met, polled until the outage has come and gone
    deadline = time.monotonic() + 30
    while not (False in seen and seen[-1]) and time.monotonic() < deadline:
        seen.append(answers())
        time.sleep(0.01)
    assert False in seen and seen[-1], seen
    (start, end), = sim.outages
    assert end - start > 0.25


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"outage_at": 5.0}, "outage_at and outage_every need outage_seconds"),
    ({"outage_seconds": 2.0, "outage_every": 1.0}, "outage_every must be longer"),
    ({"outage_seconds": -1.0}, "outage_seconds must be >= 0"),
])
def test_outage_settings_are_checked(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**kwargs)


# -- GET /api/usage/token/ -------------------------------------------------------------------

async def test_usage_reports_the_keys_quota_and_expiry(make_simulator: Any) -> None:
    sim = await make_simulator(usage=KeyUsage(granted=1000, used=250, expires_at=4102444800))
    async with aiohttp.ClientSession() as s:
        for path in ("/api/usage/token/", "/api/usage/token"):
            async with s.get(sim.base_url + path, headers=AUTH) as r:
                assert r.status == 200
                body = await r.json()
            assert body["code"] is True and body["message"] == "ok"
            data = body["data"]
            assert data["object"] == "token_usage"
            assert (data["total_granted"], data["total_used"], data["total_available"]) \
                == (1000, 250, 750)
            assert data["expires_at"] == 4102444800 and data["unlimited_quota"] is False
            assert data["model_limits"] == {} and data["model_limits_enabled"] is False


async def test_usage_refuses_a_bad_key_without_echoing_it(make_simulator: Any) -> None:
    sim = await make_simulator()
    async with aiohttp.ClientSession() as s, \
            s.get(f"{sim.base_url}/api/usage/token/",
                  headers={"Authorization": "Bearer sk-wrong-secret"}) as r:
        assert r.status == 401
        text = await r.text()
    assert '"success": false' in text and "sk-wrong-secret" not in text
    assert sim.requests[-1].kind == "usage" and sim.requests[-1].status == 401


async def test_an_expired_key_is_refused_everywhere(make_simulator: Any) -> None:
    sim = await make_simulator(usage=KeyUsage(expires_at=int(time.time()) - 60))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{sim.base_url}/api/usage/token/", headers=AUTH) as r:
            assert r.status == 401 and "expired" in (await r.json())["message"]
        async with s.post(f"{sim.base_url}/v1/videos", json=BODY, headers=AUTH) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "token_expired"
    assert sim.tasks == {}


async def test_usage_route_can_be_left_out(make_simulator: Any) -> None:
    sim = await make_simulator(usage=None)
    async with aiohttp.ClientSession() as s, \
            s.get(f"{sim.base_url}/api/usage/token/", headers=AUTH) as r:
        assert r.status == 404 and (await r.json())["success"] is False
