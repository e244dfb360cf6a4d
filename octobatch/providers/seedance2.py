"""The Seedance 2.0 dialect: the gateway's `/v1/video/generations` route family.

docs.octopusx.ai/en/videos/seedance-2/generation and .../seedance-2/query:

- submit `POST /v1/video/generations` with `{"model", "content": [...], "metadata": {...}}`;
  the text prompt is the first `content` item (`{"type": "text", "text": ...}`), media items
  follow; the answer is only `{"task_id": "cgt-..."}`;
- poll `GET /v1/video/generations/{task_id}`: `{"code": "success", "data": {"task_id",
  "status": SUBMITTED | IN_PROGRESS | SUCCESS | FAILURE, "progress": "50%", "fail_reason",
  "data": {"status": <upstream word>, "content": {"video_url": ...}}}}`;
- errors come in the same three body shapes as on the gateway's other routes.

A job's `prompt` becomes the text item, so manifests keep one way to say what a video shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from octobatch.jobs import ApiRequest
from octobatch.providers.base import TaskState, VideoStatus, parse_progress, text
from octobatch.providers.octopusx import STATUS_WORDS, encode_id, parse_error_body
from octobatch.retry import parse_retry_after
from octobatch.transport import (
    MAX_MESSAGE,
    ApiError,
    Downloaded,
    Finish,
    ServerError,
    Transport,
    http_error,
)

ROUTE = "/v1/video/generations"
# The wrapper's own words; the upstream word (data.data.status) is read when they are absent.
WRAPPER_WORDS = {
    "submitted": TaskState.QUEUED,
    "in_progress": TaskState.RUNNING,
    "success": TaskState.COMPLETED,
    "failure": TaskState.FAILED,
}


class Seedance2:
    """Seedance 2.0 tasks over the shared transport."""

    name = "seedance-2"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _task_url(self, task_id: str) -> str:
        return self.transport.url(f"{ROUTE}/{encode_id(task_id)}")

    def content_url(self, task_id: str) -> str:
        # The query page names no content route; the gateway's unified task page says its
        # tasks are also served as video objects under /v1/videos/{id}, whose /content streams.
        return self.transport.url(f"/v1/videos/{encode_id(task_id)}/content")

    async def submit(self, request: ApiRequest, idempotency_key: str) -> VideoStatus:
        data = await self.transport.request_json(
            "POST", self.transport.url(ROUTE), self.read_error,
            headers={"Idempotency-Key": idempotency_key}, json_body=generation_body(request))
        return self.read_video(data, fallback_id=None)

    async def poll(self, task_id: str) -> VideoStatus:
        data = await self.transport.request_json("GET", self._task_url(task_id), self.read_error)
        return self.read_video(data, fallback_id=task_id)

    async def download(self, url: str, dest: Path,
                       then: Finish | None = None) -> Downloaded:
        return await self.transport.download(url, dest, self.read_error, then)

    def read_error(self, status: int, body: str, retry_after: str | None) -> ApiError:
        code, message = parse_error_body(body)
        return http_error(status, code, message, parse_retry_after(retry_after),
                          not_found=status in (400, 404) and code == "task_not_exist")

    def read_video(self, data: Mapping[str, Any], fallback_id: str | None) -> VideoStatus:
        code = text(data.get("code"))
        if code and code.lower() != "success":
            message = text(data.get("message")) or f"the API answered code {code!r}"
            raise ServerError(message[:MAX_MESSAGE], status=200, code=code[:MAX_MESSAGE])
        inner = data.get("data")
        task: Mapping[str, Any] = inner if isinstance(inner, dict) else data
        nested = task.get("data")
        upstream: Mapping[str, Any] = nested if isinstance(nested, dict) else {}
        task_id = text(task.get("task_id")) or text(task.get("id")) or fallback_id
        if not task_id:
            raise ServerError("the API answered without a task id", status=200)
        word = text(task.get("status")) or text(upstream.get("status"))
        if not word and fallback_id is None:
            word = "submitted"  # the creation answer carries only the task id
        word = word[:MAX_MESSAGE] or "unknown"
        state = WRAPPER_WORDS.get(word.lower()) or STATUS_WORDS.get(word.lower(),
                                                                   TaskState.UNKNOWN)
        error: Mapping[str, str] | None = None
        video_url: str | None = None
        if state is TaskState.FAILED:
            reason = text(task.get("fail_reason")) or "the provider reported failure"
            error = {"code": word.lower(), "message": reason[:MAX_MESSAGE]}
        elif state is TaskState.COMPLETED:
            content = upstream.get("content")
            found = (text(content.get("video_url")) if isinstance(content, dict) else "") \
                or text(task.get("url"))
            video_url = found or self.content_url(task_id)
        return VideoStatus(task_id=task_id, state=state, status_word=word,
                           progress=parse_progress(task.get("progress")), video_url=video_url,
                           error=error)


def generation_body(request: ApiRequest) -> dict[str, Any]:
    """The job's JSON request as the route wants it: the prompt as the first content item."""
    body = dict(request.json or {})
    prompt = body.pop("prompt", None)
    media = body.pop("content", [])
    body["content"] = [{"type": "text", "text": prompt}, *media] if prompt else list(media)
    return body
