"""A local stand-in for the octopusx video API, with fault injection.

`Simulator` serves the provider's routes on loopback for tests, benchmarks and the demo;
`SimulatorThread` runs one in a background thread for code that cannot share an event loop.
"""

from octobatch.simulator.faults import Faults
from octobatch.simulator.server import DEMO_KEY, RecordedRequest, Simulator
from octobatch.simulator.tasks import FAIL_MARKER, STUCK_MARKER, Task
from octobatch.simulator.thread import SimulatorThread

__all__ = [
    "DEMO_KEY",
    "FAIL_MARKER",
    "STUCK_MARKER",
    "Faults",
    "RecordedRequest",
    "Simulator",
    "SimulatorThread",
    "Task",
]
