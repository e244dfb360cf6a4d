"""Shared fixtures: a real simulator on loopback, and small generic helpers."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from planted import make_victim

from octobatch.simulator import DEMO_KEY, Simulator, SimulatorThread

TEST_LATENCY = 0.05  # seconds a simulated task takes: long enough to be seen queued/running

# Real 2x2 images (written by ffmpeg), small enough to keep inline.
TINY_IMAGES = {
    "png": base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAACXBIWXMAAAABAAAAAQBPJcTWAAAAEElEQVR4nGP4"
        "y8AARAwQCgAfrgP19hgqWQAAAABJRU5ErkJggg=="),
    "jpeg": base64.b64decode(
        "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgEBAQEBAUFBQUFBQYGBgYGBgYGBgYG"
        "BgYHBwcICAgHBwcGBgcHCAgICAkJCQgICAgJCQoKCgwMCwsODg4RERT/xABMAAEBAAAAAAAAAAAAAAAAAAAABgEB"
        "AQAAAAAAAAAAAAAAAAAABgcQAQAAAAAAAAAAAAAAAAAAAAARAQAAAAAAAAAAAAAAAAAAAAD/wAARCAACAAIDASIA"
        "AhEAAxEA/9oADAMBAAIRAxEAPwCLAFF/f//Z"),
    "webp": base64.b64decode("UklGRhwAAABXRUJQVlA4TA8AAAAvAUAAAAcQ9Y/+ByKi/wEA"),
}


class ManualClock:
    """A clock a test moves by hand (`clock.now += 5`), so nothing waits on real time."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cli_sim(simulator_thread: Any, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """A simulator the command line reaches the way a user's shell does: through
    OCTOPUSX_API_KEY and OCTOBATCH_BASE_URL."""
    server: Simulator = simulator_thread()
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OCTOBATCH_BASE_URL", server.base_url)
    return server


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A precious file outside the project, for tests that plant links to it."""
    return make_victim(tmp_path)


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock to pass as `Simulator(clock=...)`; starts at 0 and moves only when told."""
    return ManualClock()


def _top_level_boxes(data: bytes) -> list[tuple[str, int]]:
    boxes, offset = [], 0
    while offset < len(data):
        assert offset + 8 <= len(data), f"truncated box header at byte {offset}"
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        assert size >= 8 and offset + size <= len(data), f"bad box size {size} at byte {offset}"
        boxes.append((kind.decode("latin-1"), size))
        offset += size
    return boxes


@pytest.fixture
def mp4_boxes() -> Callable[[bytes], list[tuple[str, int]]]:
    """`mp4_boxes(data)`: (type, size) of each top-level MP4 box; fails unless they tile the
    file exactly (a truncated or padded file does not parse)."""
    return _top_level_boxes


@pytest.fixture
def tiny_images() -> dict[str, bytes]:
    """Real png, jpeg and webp images, keyed by format."""
    return dict(TINY_IMAGES)


@pytest.fixture
def auth_headers() -> dict[str, str]:
    """The Authorization header the simulator accepts by default."""
    return {"Authorization": f"Bearer {DEMO_KEY}"}


@pytest.fixture
async def make_simulator() -> AsyncIterator[Callable[..., Any]]:
    """Factory: `sim = await make_simulator(latency=..., faults=Faults(...))`, stopped after."""
    started: list[Simulator] = []

    async def make(**kwargs: Any) -> Simulator:
        kwargs.setdefault("latency", TEST_LATENCY)
        kwargs.setdefault("seed", 1234)
        simulator = Simulator(**kwargs)
        await simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        await simulator.stop()


@pytest.fixture
async def simulator(make_simulator: Callable[..., Any]) -> Simulator:
    """A started simulator with fast tasks and no faults."""
    sim: Simulator = await make_simulator()
    return sim


@pytest.fixture
def simulator_thread() -> Iterator[Callable[..., Simulator]]:
    """Factory for subprocess tests: `sim = simulator_thread(latency=0.1)` runs in a thread."""
    with ExitStack() as stack:

        def make(**kwargs: Any) -> Simulator:
            kwargs.setdefault("latency", TEST_LATENCY)
            kwargs.setdefault("seed", 1234)
            return stack.enter_context(SimulatorThread(**kwargs))

        yield make
