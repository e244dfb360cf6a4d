"""The octopusx video API client: submit, poll and download over one pooled aiohttp session.

Every failure becomes one of a few typed errors, and the type says what a retry would risk:
`ConnectionFailed` and `RateLimited` mean the provider created nothing; `Ambiguous` means the
request left this machine and we do not know what happened to it. The API key goes into the
Authorization header and nowhere else: it is scrubbed from any text the server sends back and
never sent to a host other than the API's own (signed result URLs live on CDNs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, final
from urllib.parse import quote, urljoin, urlsplit

import aiofiles
import aiohttp

from octobatch import __version__
from octobatch.errors import OctobatchError
from octobatch.jobs import ApiRequest
from octobatch.retry import parse_retry_after

DEFAULT_BASE_URL = "https://octopusx.ai"
CONNECT_TIMEOUT = 15.0  # seconds to establish a connection: nothing has been sent yet
READ_TIMEOUT = 120.0  # seconds of silence on an open connection before we give up on it
FILE_THREADS = 4
_CHUNK = 256 * 1024  # network read size
_WRITE_SIZE = 512 * 1024  # bytes buffered per download before a write: bounded memory per job
_MAX_MESSAGE = 300


class ApiError(OctobatchError):
    """A request to the video API failed. `code` is the provider's error code when it sent one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class RateLimited(ApiError):
    """429: too many requests or too many tasks for this key; nothing was created."""

    def __init__(self, message: str, *, retry_after: float | None, code: str | None = None):
        super().__init__(message, status=429, code=code)
        self.retry_after = retry_after


class AuthError(ApiError):
    """401/403: every further request with this key will fail the same way.

    `cause` is "key" (invalid or expired), "quota" (exhausted) or "balance" (403).
    """

    def __init__(self, message: str, *, status: int, cause: str, code: str | None = None):
        super().__init__(message, status=status, code=code)
        self.cause = cause


class BadRequest(ApiError):
    """400: the provider refused this request; repeating it unchanged will not help."""


class TaskNotFound(BadRequest):
    """The provider does not know this task id (400 `task_not_exist`, or 404)."""


class ServerError(ApiError):
    """5xx from the API. On a submission the task may or may not have been created."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None,
                 code: str | None = None):
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class ConnectionFailed(ApiError):
    """The connection could not be opened: the request was never sent."""


class Ambiguous(ApiError):
    """The request was sent but no complete answer came back (dropped connection)."""


class Timeout(Ambiguous):
    """The request was sent but the answer did not arrive in time."""


class UrlExpired(ApiError):
    """The result URL no longer serves the file (403/404/410 on a signed link): poll again."""


class TruncatedDownload(ApiError):
    """The body ended before Content-Length said it would."""


class TaskState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"  # a status word we have not seen documented: surfaced, not terminal


_STATUS_WORDS = {
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


@dataclass(frozen=True)
class VideoStatus:
    """The provider's video object, normalised."""

    task_id: str
    state: TaskState
    status_word: str  # as the provider wrote it, for messages
    progress: int | None
    video_url: str | None  # absolute; set once completed
    error: Mapping[str, str] | None  # {"code", "message"} once failed


@dataclass(frozen=True)
class Downloaded:
    bytes: int
    sha256: str


@final
class VideoClient:
    """One pooled session for every request of a run. Use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        concurrency: int = 8,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        # Video writes get their own threads: in the default pool they would queue ahead of
        # the journal's fsyncs, which every submission waits for.
        self._files = concurrent.futures.ThreadPoolExecutor(FILE_THREADS,
                                                            thread_name_prefix="octobatch-io")

    async def __aenter__(self) -> VideoClient:
        # Each job in flight needs at most one connection at a time; a few spare ones let a
        # download and the next poll overlap without queueing inside aiohttp.
        connector = aiohttp.TCPConnector(limit=self._concurrency + 4, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"User-Agent": f"octobatch/{__version__}", "Accept": "application/json"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._files.shutdown(wait=False)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("VideoClient used outside 'async with'")
        return self._session

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def content_url(self, task_id: str) -> str:
        return f"{self.base_url}/v1/videos/{quote(task_id, safe='')}/content"

    async def submit(self, request: ApiRequest, idempotency_key: str) -> VideoStatus:
        """POST /v1/videos. Raises ConnectionFailed only when nothing was sent."""
        headers = {**self._auth(), "Idempotency-Key": idempotency_key}
        url = f"{self.base_url}/v1/videos"
        if request.transport == "json":
            kwargs: dict[str, Any] = {"json": dict(request.json or {})}
        else:
            kwargs = {"data": _form_data(request)}
        data = await self._request_json("POST", url, headers, kwargs)
        return self._normalise(data, fallback_id=None)

    async def poll(self, task_id: str) -> VideoStatus:
        """GET /v1/videos/{task_id} (ids may contain ':' and '/', so they are encoded)."""
        url = f"{self.base_url}/v1/videos/{quote(task_id, safe='')}"
        data = await self._request_json("GET", url, self._auth(), {})
        return self._normalise(data, fallback_id=task_id)

    async def download(self, url: str, dest: Path) -> Downloaded:
        """Stream `url` into `dest` (overwritten), hashing as it goes; never the whole body in
        memory. The key is sent only to the API's own host."""
        headers = self._auth() if _same_origin(url, self.base_url) else {}
        try:
            async with self.session.get(url, headers=headers) as resp:
                if resp.status in (400, 401, 403, 404, 410):
                    raise UrlExpired(f"result URL answered HTTP {resp.status}", status=resp.status)
                if resp.status != 200:
                    raise self._http_error(resp.status, await resp.text(errors="replace"),
                                           resp.headers.get("Retry-After"))
                expected = resp.content_length
                digest = hashlib.sha256()
                size = 0
                buffer = bytearray()
                loop = asyncio.get_running_loop()
                async with aiofiles.open(dest, "wb", executor=self._files) as out:

                    async def flush(data: bytes) -> None:
                        # Hash and write each buffer side by side in the file threads (hashlib
                        # releases the GIL): the event loop never spends its time hashing, and
                        # a hop per buffer, not per network chunk, keeps the thread cost low.
                        await asyncio.gather(out.write(data),
                                             loop.run_in_executor(self._files, digest.update, data))

                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        size += len(chunk)
                        buffer += chunk
                        if len(buffer) >= _WRITE_SIZE:
                            await flush(bytes(buffer))
                            buffer = bytearray()
                    if buffer:
                        await flush(bytes(buffer))
        except aiohttp.ClientPayloadError as exc:
            raise TruncatedDownload(f"download interrupted: {_describe(exc)}") from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc) from None
        if expected is not None and size != expected:
            raise TruncatedDownload(f"download ended after {size} of {expected} bytes")
        if size == 0:
            raise TruncatedDownload("download was empty")
        return Downloaded(bytes=size, sha256=digest.hexdigest())

    async def _request_json(
        self, method: str, url: str, headers: Mapping[str, str], kwargs: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        try:
            async with self.session.request(method, url, headers=headers, **kwargs) as resp:
                text = await resp.text(errors="replace")
                if resp.status >= 400:
                    raise self._http_error(resp.status, text, resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc) from None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ServerError(
                f"the API answered HTTP {resp.status} with a body that is not a JSON object: "
                f"{self._scrub(text)[:80]!r}",
                status=resp.status,
            )
        return data

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _http_error(self, status: int, body: str, retry_after_header: str | None) -> ApiError:
        code, message = parse_error_body(body)
        message = self._scrub(message)[:_MAX_MESSAGE] or f"HTTP {status}"
        retry_after = parse_retry_after(retry_after_header)
        if status == 429:
            return RateLimited(f"rate limited: {message}", retry_after=retry_after, code=code)
        if status == 401:
            cause = "quota" if _mentions(message, code, ("quota", "额度", "limit")) else "key"
            what = ("the API key's quota is exhausted" if cause == "quota"
                    else "the API key was rejected (invalid or expired)")
            return AuthError(f"{what}: {message}; check OCTOPUSX_API_KEY", status=401,
                             cause=cause, code=code)
        if status == 403:
            return AuthError(f"the account balance is insufficient: {message}; top up the "
                             "account", status=403, cause="balance", code=code)
        if status == 404 or (status == 400 and code == "task_not_exist"):
            return TaskNotFound(f"unknown task: {message}", status=status, code=code)
        if 400 <= status < 500:
            return BadRequest(f"request refused (HTTP {status}): {message}", status=status,
                              code=code)
        return ServerError(f"server error (HTTP {status}): {message}", status=status,
                           retry_after=retry_after, code=code)

    def _normalise(self, data: Mapping[str, Any], fallback_id: str | None) -> VideoStatus:
        task_id = _text(data.get("id")) or _text(data.get("task_id")) or fallback_id
        if not task_id:
            raise ServerError("the API answered without a task id", status=200)
        word = _text(data.get("status")) or "unknown"
        state = _STATUS_WORDS.get(word.lower(), TaskState.UNKNOWN)
        error: Mapping[str, str] | None = None
        video_url: str | None = None
        if state is TaskState.FAILED:
            error = _task_error(data.get("error"), word)
        elif state is TaskState.COMPLETED:
            found = _result_url(data)
            video_url = urljoin(self.base_url + "/", found) if found else self.content_url(task_id)
        return VideoStatus(
            task_id=task_id,
            state=state,
            status_word=word,
            progress=parse_progress(data.get("progress")),
            video_url=video_url,
            error=error,
        )


def parse_error_body(body: str) -> tuple[str | None, str]:
    """(code, message) from any of the provider's three error shapes, or the raw text."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, body.strip()
    if not isinstance(data, dict):
        return None, body.strip()
    inner = data.get("error")
    if isinstance(inner, dict):  # OpenAI style
        code = _text(inner.get("code")) or _text(inner.get("type"))
        return code or None, _text(inner.get("message"))
    if isinstance(inner, str) and inner:
        return _text(data.get("code")) or None, inner
    # {"code", "message", "data"} and {"success": false, "message"}
    return _text(data.get("code")) or None, _text(data.get("message")) or _text(data.get("msg"))


def parse_progress(value: object) -> int | None:
    """0-100 from an int, float, "50" or "50%"; None when absent or unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip().rstrip("%"))
        except ValueError:
            return None
    return max(0, min(100, int(number)))


def _result_url(data: Mapping[str, Any]) -> str | None:
    url = _text(data.get("video_url"))
    if url:
        return url
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and _text(metadata.get("url")):
        return _text(metadata.get("url"))
    items = data.get("data")
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return _text(items[0].get("url")) or None
    return None


def _task_error(value: object, word: str) -> dict[str, str]:
    cancelled = word.lower() in ("cancelled", "canceled")
    code = "cancelled" if cancelled else "failed"
    message = "the provider cancelled the task" if cancelled else "the provider reported failure"
    if isinstance(value, dict):
        code = _text(value.get("code")) or code
        message = _text(value.get("message")) or message
    elif isinstance(value, str) and value:
        message = value
    return {"code": code, "message": message[:_MAX_MESSAGE]}


def _text(value: object) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _mentions(message: str, code: str | None, words: tuple[str, ...]) -> bool:
    haystack = f"{message} {code or ''}".lower()
    return any(word in haystack for word in words)


def _same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _form_data(request: ApiRequest) -> aiohttp.FormData:
    # Forced: without a file part aiohttp would send a urlencoded form, which jimeng refuses.
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in request.form.items():
        form.add_field(name, str(value))
    for part in request.files:
        # Reference images are small (the schema limits them); reading them whole is fine.
        form.add_field(part.field, part.path.read_bytes(), filename=part.filename,
                       content_type=part.content_type)
    return form


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _transport_error(exc: BaseException) -> ApiError:
    # Connection setup failures happen before a single byte of the request is written.
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return ConnectionFailed(f"cannot connect to the API: {_describe(exc)}")
    if isinstance(exc, asyncio.TimeoutError):
        return Timeout("the API did not answer in time")
    return Ambiguous(f"connection lost before the answer arrived: {_describe(exc)}")
