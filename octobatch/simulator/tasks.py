"""Simulated tasks: their state is a pure function of the clock, so no timers are needed.

A task is queued for the first fifth of its duration, then running with progress rising
towards 100, then completed or failed. Every poll recomputes this from the injected clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from octobatch.simulator.faults import Faults

Phase = Literal["queued", "running", "completed", "failed"]
Outcome = Literal["completed", "failed", "stuck"]

QUEUED_SHARE = 0.2  # part of a task's duration spent queued before it starts running
FAIL_MARKER = "[fail]"  # in a prompt: the task fails
STUCK_MARKER = "[stuck]"  # in a prompt: the task runs forever (for client deadline tests)


@dataclass
class Task:
    """One generation task; mutable only in its current download URL and file version."""

    id: str
    model: str
    prompt: str
    params: Mapping[str, Any]
    idempotency_key: str | None
    started: float  # simulator clock at creation
    created_at: int  # Unix seconds, as the API reports it
    duration: float  # seconds from creation to the end
    outcome: Outcome
    url_token: str | None = field(default=None, repr=False)
    url_expires: float = field(default=math.inf, repr=False)
    version: int = field(default=0, repr=False)  # bumped when the provider replaces the file
    modified: int = field(default=0, repr=False)  # Unix seconds of the current version
    download_requests: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self.modified = self.modified or self.created_at

    @property
    def finishes_at(self) -> float:
        return math.inf if self.outcome == "stuck" else self.started + self.duration

    def phase(self, now: float) -> tuple[Phase, int]:
        """The phase and progress (0-100) at clock time `now`."""
        if now >= self.finishes_at:
            return ("completed" if self.outcome == "completed" else "failed"), 100
        elapsed = now - self.started
        if elapsed < self.duration * QUEUED_SHARE:
            return "queued", 0
        if self.outcome == "stuck":
            return "running", 50
        return "running", min(99, max(1, int(100 * elapsed / self.duration)))


def video_object(task: Task, now: float, faults: Faults, url: str | None, *,
                 just_created: bool = False) -> dict[str, Any]:
    """The task as the API shows it, in the vocabulary `faults` selects.

    `url` is the current download URL once the task has completed (None before, or when the
    result is only available from the /content route). The answer to a submission always
    says queued, as the provider's does, however short the task.
    """
    phase, progress = ("queued", 0) if just_created else task.phase(now)
    word = {"queued": "queued", "running": faults.status_running,
            "completed": faults.status_completed, "failed": "failed"}[phase]
    shown: int | str = progress
    if faults.progress_style == "string":
        shown = str(progress)
    elif faults.progress_style == "percent":
        shown = f"{progress}%"
    obj: dict[str, Any] = {
        "id": task.id,
        "task_id": task.id,
        "object": "video",
        "model": task.model,
        "status": word.upper() if faults.status_upper else word,
        "progress": shown,
        "created_at": task.created_at,
        "video_url": "",
    }
    if phase == "failed":
        obj["error"] = {"message": "视频生成失败 (the video could not be generated)",
                        "code": "generation_failed"}
    elif phase != "completed" and faults.empty_error_while_running:
        obj["error"] = {}
    if url is not None:
        if faults.url_location == "video_url":
            obj["video_url"] = url
        elif faults.url_location == "metadata":
            obj["metadata"] = {"url": url}
        elif faults.url_location == "data":
            obj["data"] = [{"url": url}]
    return obj
