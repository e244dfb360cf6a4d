"""octobatch: declarative, resumable bulk video generation through the octopusx video API.

The library API (see README, "Use from Python"):

    import octobatch
    manifest = octobatch.load_manifest("manifests/demo.yaml")
    plan = octobatch.make_plan(manifest)
    result = octobatch.run(manifest, simulate=True, on_event=print)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from octobatch.version import __version__

__all__ = [
    "Action",
    "Completed",
    "DeadlinePassed",
    "Downloaded",
    "Event",
    "Failed",
    "LimitLearned",
    "Manifest",
    "ManifestError",
    "NotSubmitted",
    "OctobatchError",
    "Plan",
    "Progressed",
    "Pruned",
    "Retried",
    "RunFinished",
    "RunResult",
    "RunStarted",
    "Skipped",
    "StateError",
    "Step",
    "SubmissionsPaused",
    "SubmissionsStopped",
    "Submitted",
    "Throttled",
    "Uncertain",
    "Unfinished",
    "UnknownStatus",
    "UsageError",
    "Waiting",
    "__version__",
    "load_manifest",
    "make_plan",
    "run",
    "run_async",
]

# Imported on first use, so `octobatch validate` never pays for aiohttp and the engine.
_LAZY = {
    "Manifest": "octobatch.manifest",
    "load_manifest": "octobatch.manifest",
    "Plan": "octobatch.plan",
    "Action": "octobatch.plan",
    "Step": "octobatch.plan",
    "Event": "octobatch.progress",
    "RunStarted": "octobatch.progress",
    "Skipped": "octobatch.progress",
    "Submitted": "octobatch.progress",
    "Progressed": "octobatch.progress",
    "Completed": "octobatch.progress",
    "Downloaded": "octobatch.progress",
    "Failed": "octobatch.progress",
    "Retried": "octobatch.progress",
    "Throttled": "octobatch.progress",
    "Uncertain": "octobatch.progress",
    "UnknownStatus": "octobatch.progress",
    "Unfinished": "octobatch.progress",
    "NotSubmitted": "octobatch.progress",
    "Waiting": "octobatch.progress",
    "LimitLearned": "octobatch.progress",
    "SubmissionsPaused": "octobatch.progress",
    "DeadlinePassed": "octobatch.progress",
    "SubmissionsStopped": "octobatch.progress",
    "Pruned": "octobatch.progress",
    "RunFinished": "octobatch.progress",
    "RunResult": "octobatch.engine",
    "make_plan": "octobatch.api",
    "run": "octobatch.api",
    "run_async": "octobatch.api",
    "ManifestError": "octobatch.errors",
    "OctobatchError": "octobatch.errors",
    "StateError": "octobatch.errors",
    "UsageError": "octobatch.errors",
}

if TYPE_CHECKING:
    from octobatch.api import make_plan, run, run_async
    from octobatch.engine import RunResult
    from octobatch.errors import ManifestError, OctobatchError, StateError, UsageError
    from octobatch.manifest import Manifest, load_manifest
    from octobatch.plan import Action, Plan, Step
    from octobatch.progress import (
        Completed,
        DeadlinePassed,
        Downloaded,
        Event,
        Failed,
        LimitLearned,
        NotSubmitted,
        Progressed,
        Pruned,
        Retried,
        RunFinished,
        RunStarted,
        Skipped,
        SubmissionsPaused,
        SubmissionsStopped,
        Submitted,
        Throttled,
        Uncertain,
        Unfinished,
        UnknownStatus,
        Waiting,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'octobatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
