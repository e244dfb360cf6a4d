"""The Seedance 2.0 route family's answers (docs.octopusx.ai/en/videos/seedance-2/*).

Creation answers only `{"task_id"}`; the query wraps the task in `{"code": "success", "data":
{...}}` with its own status words (SUBMITTED, IN_PROGRESS, SUCCESS, FAILURE), a "50%" progress
string, and the upstream task (native status word, result URL in `content.video_url`).
"""

from __future__ import annotations

from typing import Any

from octobatch.simulator.tasks import Task

ROUTE = "/v1/video/generations"
_WORDS = {"queued": ("SUBMITTED", "queued"), "running": ("IN_PROGRESS", "processing"),
          "completed": ("SUCCESS", "succeeded"), "failed": ("FAILURE", "failed")}


def created(task: Task) -> dict[str, Any]:
    return {"task_id": task.id}


def task_answer(task: Task, now: float, url: str | None) -> dict[str, Any]:
    phase, progress = task.phase(now)
    wrapper, native = _WORDS[phase]
    finished = phase in ("completed", "failed")
    upstream: dict[str, Any] = {"status": native, "content": {}, "usage": {}}
    upstream.update({k: task.params[k] for k in ("duration", "resolution", "ratio")
                     if k in task.params})
    if url is not None:
        upstream["content"] = {"video_url": url}
    data: dict[str, Any] = {
        "task_id": task.id,
        "status": wrapper,
        "progress": f"{progress}%",
        "submit_time": task.created_at,
        "start_time": task.created_at,
        "finish_time": task.created_at + int(task.duration) if finished else 0,
        "data": upstream,
    }
    if phase == "failed":
        data["fail_reason"] = "视频生成失败 (the video could not be generated)"
    return {"code": "success", "data": data}
