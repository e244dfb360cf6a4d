"""What a run is asked to do (options) and what it did (result)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from octobatch.download import DownloadLimits
from octobatch.jobs import JobSpec
from octobatch.retry import DEFAULT_CONCURRENCY, DEFAULT_POLL_INTERVAL, RetryPolicy


@dataclass(frozen=True)
class EngineOptions:
    output_dir: Path
    concurrency: int = DEFAULT_CONCURRENCY
    poll_interval: float = DEFAULT_POLL_INTERVAL
    timeout: float | None = None  # per-job deadline in seconds; None = wait as long as it takes
    # Run deadline in seconds from the start: jobs still waiting or running then are left
    # unfinished (task ids kept) and the run ends. None = the run goes on until every job ends.
    deadline: float | None = None
    prune: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    schema_dir: Path | None = None  # where the model files are (None: the shipped ones)
    download: DownloadLimits = field(default_factory=DownloadLimits.from_env)
    # What one submission of a job costs, None when unpriced (None here: nothing is priced).
    cost_of: Callable[[JobSpec], float | None] | None = None
    # Submissions stop before the manifest's recorded spend would pass this.
    max_cost: float | None = None


@dataclass(frozen=True)
class RunResult:
    completed: int
    failed: int
    unfinished: int
    running_at_provider: int  # jobs with a task id whose result we do not have yet
    possible_duplicates: tuple[str, ...]
    submissions_stopped: str | None
    learned_limit: int | None = None  # the provider's per-key task limit, if one was met
    not_submitted: int = 0  # unfinished jobs with no task id: what a stop left waiting
    spent: float = 0.0  # the manifest's recorded spend after the run
    blocked: int = 0  # unfinished because a file octobatch did not write stands at their name

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.unfinished == 0
