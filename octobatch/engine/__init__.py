"""The run engine: a scheduler (worker pool, per-key submission gates), the per-job protocol,
and the pure decisions they follow.

    engine = Engine(store, providers, EngineOptions(output_dir=...), emit)
    result = await engine.run(plan)
"""

from octobatch.engine.options import EngineOptions, RunResult
from octobatch.engine.scheduler import Engine

__all__ = ["Engine", "EngineOptions", "RunResult"]
