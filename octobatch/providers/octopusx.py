"""The octopusx dialect (new-api gateway): routes, status words, error bodies, result URLs.

See the provider notes in docs/engine.md: one route serves every model (`POST /v1/videos`),
tasks are polled at `/v1/videos/{id}`, a finished video's URL may sit in one of three places
or be served by `/v1/videos/{id}/content`, and errors come in three body shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp

from octobatch.jobs import ApiRequest
from octobatch.providers.base import TaskState, VideoStatus, parse_progress, text
from octobatch.retry import parse_retry_after
from octobatch.transport import (
    MAX_MESSAGE,
    ApiError,
    Downloaded,
    Finish,
    ServerError,
    Transport,
    http_error,
    parse_json_object,
)

STATUS_WORDS = {
    "queued": TaskState.QUEUED,
    "pending": TaskState.QUEUED,
    "submitted": TaskState.QUEUED,
    "in_progress": TaskState.RUNNING,
    "processing": TaskState.RUNNING,
    "running": TaskState.RUNNING,
    "completed": TaskState.COMPLETED,
    "succeeded": TaskState.COMPLETED,
    "success": TaskState.COMPLETED,
    "failed": TaskState.FAILED,
    "failure": TaskState.FAILED,
    "cancelled": TaskState.FAILED,
    "canceled": TaskState.FAILED,
}
# new-api's answer when a key already has as many unfinished tasks as it may.
DEFAULT_BASE_URL = "https://octopusx.ai"
SLOT_LIMIT_CODE = "token_concurrency_limit_reached"
TASK_NOT_EXIST = "task_not_exist"


class OctopusX:
    """The octopusx video API over a shared transport."""

    name = "octopusx"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _task_url(self, task_id: str) -> str:
        return self.transport.url(f"/v1/videos/{encode_id(task_id)}")

    def content_url(self, task_id: str) -> str:
        return self._task_url(task_id) + "/content"

    async def submit(self, request: ApiRequest, idempotency_key: str) -> VideoStatus:
        """POST /v1/videos: JSON or multipart, as the model's declaration says."""
        if request.transport == "json":
            body: dict[str, Any] = {"json_body": dict(request.json or {})}
        else:
            body = {"form": _form_data(request)}
        data = await self.transport.request_json(
            "POST", self.transport.url("/v1/videos"), self.read_error,
            headers={"Idempotency-Key": idempotency_key}, **body)
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
                          slot_limit=code == SLOT_LIMIT_CODE,
                          not_found=status == 400 and code == TASK_NOT_EXIST)

    def read_video(self, data: Mapping[str, Any], fallback_id: str | None) -> VideoStatus:
        task_id = text(data.get("id")) or text(data.get("task_id")) or fallback_id
        if not task_id:
            raise ServerError("the API answered without a task id", status=200)
        word = text(data.get("status"))[:MAX_MESSAGE] or "unknown"
        state = STATUS_WORDS.get(word.lower(), TaskState.UNKNOWN)
        error: Mapping[str, str] | None = None
        video_url: str | None = None
        if state is TaskState.FAILED:
            error = _task_error(data.get("error"), word)
        elif state is TaskState.COMPLETED:
            found = _result_url(data)
            if not found:
                video_url = self.content_url(task_id)
            elif found.startswith(("https://", "http://")):
                video_url = found  # nothing to join it with: urljoin is slow on every poll
            else:
                video_url = urljoin(self.transport.base_url + "/", found)
        return VideoStatus(
            task_id=task_id,
            state=state,
            status_word=word,
            progress=parse_progress(data.get("progress")),
            video_url=video_url,
            error=error,
        )


def encode_id(task_id: str) -> str:
    """A task id as one path segment: ids may hold ':' and '/', and '.' or '..' would be
    normalised out of the path, so every character but letters, digits, '-', '_' and '~' is
    percent-encoded."""
    return quote(task_id, safe="").replace(".", "%2E")


def parse_error_body(body: str) -> tuple[str | None, str]:
    """(code, message) from any of the provider's three error shapes, or the raw text."""
    data = parse_json_object(body)
    if data is None:
        return None, body.strip()
    inner = data.get("error")
    if isinstance(inner, dict):  # OpenAI style
        code = text(inner.get("code")) or text(inner.get("type"))
        return code or None, text(inner.get("message"))
    if isinstance(inner, str) and inner:
        return text(data.get("code")) or None, inner
    # {"code", "message", "data"} and {"success": false, "message"}
    return text(data.get("code")) or None, text(data.get("message")) or text(data.get("msg"))


def _result_url(data: Mapping[str, Any]) -> str | None:
    url = text(data.get("video_url"))
    if url:
        return url
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and text(metadata.get("url")):
        return text(metadata.get("url"))
    items = data.get("data")
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return text(items[0].get("url")) or None
    return None


def _task_error(value: object, word: str) -> dict[str, str]:
    cancelled = word.lower() in ("cancelled", "canceled")
    code = "cancelled" if cancelled else "failed"
    message = "the provider cancelled the task" if cancelled else "the provider reported failure"
    if isinstance(value, dict):
        code = text(value.get("code")) or code
        message = text(value.get("message")) or message
    elif isinstance(value, str) and value:
        message = value
    return {"code": code[:MAX_MESSAGE], "message": message[:MAX_MESSAGE]}


def _form_data(request: ApiRequest) -> aiohttp.FormData:
    # Forced: without a file part aiohttp would send a urlencoded form, which jimeng refuses.
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in request.form.items():
        form.add_field(name, str(value))
    for part in request.files:
        form.add_field(part.field, part.data, filename=part.filename,
                       content_type=part.content_type)
    return form
