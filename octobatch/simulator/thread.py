"""Run a Simulator on its own event loop in a background thread.

For tests that drive `octobatch run` as a subprocess (or any synchronous code): the server
keeps answering while the test thread blocks on the child process.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from octobatch.simulator.server import Simulator


class SimulatorThread:
    """`with SimulatorThread(latency=0.1) as sim:` gives a started Simulator (`sim.base_url`)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **simulator_kwargs: Any) -> None:
        self._host = host
        self._port = port
        self._kwargs = simulator_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._simulator: Simulator | None = None

    async def _start(self) -> Simulator:
        simulator = Simulator(**self._kwargs)
        await simulator.start(self._host, self._port)
        return simulator

    def __enter__(self) -> Simulator:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="octobatch-simulator", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._simulator = asyncio.run_coroutine_threadsafe(self._start(), loop).result(30)
        except BaseException:
            self._shutdown()
            raise
        return self._simulator

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._simulator is not None:
            asyncio.run_coroutine_threadsafe(self._simulator.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        self._loop = self._thread = self._simulator = None
