"""A local stand-in for the octopusx video API, with fault injection.

`Simulator` serves the provider's routes on loopback for tests, benchmarks and the demo;
`SimulatorThread` runs one in a background thread for code that cannot share an event loop.

The names are loaded on first use, so the CLI can read the simulator's options (and
`validate` or `plan` can run) without importing aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from octobatch.simulator.faults import Faults
    from octobatch.simulator.server import DEMO_KEY, RecordedRequest, Simulator
    from octobatch.simulator.tasks import FAIL_MARKER, STUCK_MARKER, Task
    from octobatch.simulator.thread import SimulatorThread
    from octobatch.simulator.usage import KeyUsage

_HOMES = {
    "DEMO_KEY": "server",
    "FAIL_MARKER": "tasks",
    "KeyUsage": "usage",
    "STUCK_MARKER": "tasks",
    "Faults": "faults",
    "RecordedRequest": "server",
    "Simulator": "server",
    "SimulatorThread": "thread",
    "Task": "tasks",
}

__all__ = [
    "DEMO_KEY",
    "FAIL_MARKER",
    "STUCK_MARKER",
    "Faults",
    "KeyUsage",
    "RecordedRequest",
    "Simulator",
    "SimulatorThread",
    "Task",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
