"""HTTP for every provider: one pooled aiohttp session, bounded reads, streaming downloads.

Every failure becomes one of a few typed errors, and the type says what a retry would risk:
`ConnectionFailed` and `RateLimited` mean the provider created nothing; `Ambiguous` means the
request left this machine and we do not know what happened to it. Which HTTP answer is which
error is the provider's call (its error bodies differ), so requests take an `ErrorMapper`.

The API key goes into the Authorization header and nowhere else: it is scrubbed from any text
the server sends back and never sent to a host other than the API's own (signed result URLs
live on CDNs).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from octobatch import answerwatch
from octobatch.errors import OctobatchError
from octobatch.filethreads import FileThreads
from octobatch.fsutil import Folder
from octobatch.retry import DEFAULT_CONCURRENCY
from octobatch.scrub import Scrubber
from octobatch.version import __version__

if TYPE_CHECKING:
    from octobatch.download import DownloadLimits

CONNECT_TIMEOUT = 15.0  # seconds to establish a connection: nothing has been sent yet
READ_TIMEOUT = 120.0  # seconds of silence on an open connection before we give up on it
MAX_ANSWER_BYTES = 1024 * 1024  # a JSON answer larger than this is not a video object
# Each call's time in a file thread is mostly waiting: on the disk (an fsync under load takes
# about 10 ms) and on the GIL after each write, hash and fsync. With 4 threads a busy run
# queued each call for ~60 ms; with 8, ~9 ms (16 gained nothing more: the threads wait on
# the GIL longer). A job has at most one call in flight: at --concurrency 8 none queues.
FILE_THREADS = 8
MAX_MESSAGE = 300  # characters of a provider's message kept in errors


class ApiError(OctobatchError):
    """A request to the video API failed. `code` is the provider's error code when it sent one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class RateLimited(ApiError):
    """429: too many requests or too many tasks for this key; nothing was created.

    `slot_limit` says the provider refused because the key has too many unfinished tasks
    (a concurrency limit), as opposed to too many requests per unit of time.
    """

    def __init__(self, message: str, *, retry_after: float | None, code: str | None = None,
                 slot_limit: bool = False):
        super().__init__(message, status=429, code=code)
        self.retry_after = retry_after
        self.slot_limit = slot_limit


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
    """The transfer ended early (cut, stalled, shorter than announced); transient. The bytes
    that arrived are kept, so the next download of the same file resumes. `progressed` is
    how many bytes this attempt added (0 when the file starts over)."""

    def __init__(self, message: str, *, progressed: int = 0) -> None:
        super().__init__(message)
        self.progressed = progressed


@dataclass(frozen=True)
class Downloaded:
    bytes: int  # the file's size
    sha256: str  # of the whole file
    received: int = 0  # body bytes that came over the network for it, cut attempts included
    # The open folder the file is in, for the rename into place without a walk to it.
    folder: Folder | None = field(default=None, compare=False, repr=False)


# (HTTP status, body text with the key scrubbed, Retry-After header) -> the typed error.
ErrorMapper = Callable[[int, str, "str | None"], ApiError]

# What the caller does with a whole downloaded file, in the file threads, as part of the last
# write (the file synced and closed by then): its move into place costs no trip back to the
# event loop and out again. Once it has begun, the download waits for it even when cancelled.
Finish = Callable[[Downloaded], None]


class Transport:
    """One pooled session for every request of a run. Use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        download_limits: DownloadLimits | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._scrubber = Scrubber(api_key)
        self._concurrency = concurrency
        self._max_answer = max_answer_bytes
        # An API answer's time is bounded by one watch for all requests (answerwatch.py); an
        # upload's by its silences (`sock_read`): its time is the upload's.
        self._answers = answerwatch.AnswerWatch(read_timeout)
        self._upload_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        # Video writes get their own threads: in the default pool they would queue ahead of
        # the journal's fsyncs, which every submission waits for.
        self._files = FileThreads(FILE_THREADS, "octobatch-io")
        from octobatch.download import Downloader, DownloadLimits  # builds on this module

        self.downloads = Downloader(self._files, download_limits or DownloadLimits.from_env(),
                                    self.scrub)

    async def __aenter__(self) -> Transport:
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
        self._files.close()
        self.downloads.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Transport used outside 'async with'")
        return self._session

    def url(self, path: str) -> str:
        """`path` (starting with '/', already encoded) under the base URL."""
        return self.base_url + path

    def auth_for(self, url: str) -> dict[str, str]:
        """The Authorization header, only for the API's own origin (never for a CDN)."""
        # Every API route is the base URL plus a path: that prefix is the same origin.
        if not url.startswith(self.base_url + "/") and not _same_origin(url, self.base_url):
            return {}
        return {"Authorization": f"Bearer {self._api_key}"}

    def scrub(self, text: str) -> str:
        """`text` from the provider without the key, however it was written."""
        return self._scrubber.body(text)

    async def request_json(
        self,
        method: str,
        url: str,
        errors: ErrorMapper,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        form: aiohttp.FormData | None = None,
    ) -> Mapping[str, Any]:
        """A JSON object from `url`; any other answer is a typed error from `errors`."""
        kwargs: dict[str, Any] = {}
        if json_body is not None:
            kwargs["json"] = dict(json_body)
        if form is not None:
            kwargs["data"] = form
            kwargs["timeout"] = self._upload_timeout
        all_headers = {**self.auth_for(url), **(headers or {})}
        watched = self._answers.watching() if form is None else answerwatch.Watched(None)
        try:
            with watched:
                async with self.session.request(method, as_url(url), headers=all_headers,
                                                **kwargs) as resp:
                    raw = await self._read_bounded(resp)
                    text = self.scrub(raw.decode("utf-8", errors="replace"))
                    if resp.status >= 400:
                        raise errors(resp.status, text, resp.headers.get("Retry-After"))
                    status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise transport_error(exc, url) from None
        data = parse_json_object(text)
        if data is None:
            raise ServerError(
                f"the API answered HTTP {status} with a body that is not a JSON object: "
                f"{text[:80]!r}",
                status=status,
            )
        return data

    async def _read_bounded(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length > self._max_answer:
            raise ServerError(f"the API answered with {resp.content_length} bytes, more than "
                              f"the {self._max_answer} a JSON answer may have", status=resp.status)
        if resp.content_length is not None:
            return await resp.read()  # exactly Content-Length bytes, checked above
        body = bytearray()
        async for chunk in resp.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > self._max_answer:
                raise ServerError(f"the API's answer ran past {self._max_answer} bytes; "
                                  "it is not a JSON answer", status=resp.status)
        return bytes(body)

    async def download(self, url: str, dest: Path, errors: ErrorMapper,
                       then: Finish | None = None) -> Downloaded:
        """Stream `url` into `dest`, resuming what an earlier call for `dest` left there, and
        run `then` in the file threads once the whole file is there; see `octobatch.download`.
        The key is sent only to the API's own host."""
        return await self.downloads.fetch(self.session, url, dest, errors, self.auth_for(url),
                                          then)


def http_error(status: int, code: str | None, message: str, retry_after: float | None, *,
               slot_limit: bool = False, not_found: bool = False) -> ApiError:
    """The usual meaning of an HTTP error status, once a provider has read its body."""
    message = message[:MAX_MESSAGE] or f"HTTP {status}"
    if status == 429:
        return RateLimited(f"rate limited: {message}", retry_after=retry_after, code=code,
                           slot_limit=slot_limit)
    if status == 401:
        cause = "quota" if _mentions(message, code, ("quota", "额度", "limit")) else "key"
        what = ("the API key's quota is exhausted" if cause == "quota"
                else "the API key was rejected (invalid or expired)")
        return AuthError(f"{what}: {message}; check OCTOPUSX_API_KEY", status=401,
                         cause=cause, code=code)
    if status == 403:
        return AuthError(f"the account balance is insufficient: {message}; top up the "
                         "account", status=403, cause="balance", code=code)
    if status == 404 or not_found:
        return TaskNotFound(f"unknown task: {message}", status=status, code=code)
    if 400 <= status < 500:
        return BadRequest(f"request refused (HTTP {status}): {message}", status=status,
                          code=code)
    return ServerError(f"server error (HTTP {status}): {message}", status=status,
                       retry_after=retry_after, code=code)


def parse_json_object(text: str) -> dict[str, Any] | None:
    """`text` as a JSON object, or None. NaN and infinities are read as null: they are not
    JSON, and a provider's typo must not travel on into our own output."""
    try:
        data = json.loads(text, parse_constant=lambda _: None,
                          parse_float=_finite_float)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _finite_float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def as_url(url: str) -> URL:
    """`url` sent as written when it is already encoded (printable ASCII, no spaces): a
    task id encoded as `%2E%2E` must not be decoded and normalised out of the path."""
    if url.isascii() and url.isprintable() and " " not in url:
        return URL(url, encoded=True)
    return URL(url)


def _mentions(message: str, code: str | None, words: tuple[str, ...]) -> bool:
    haystack = f"{message} {code or ''}".lower()
    return any(word in haystack for word in words)


def _same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def transport_error(exc: BaseException, url: str) -> ApiError:
    # Connection setup failures happen before a single byte of the request is written.
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return ConnectionFailed(f"connection refused to {_origin(url)}")
        cause = exc.os_error.strerror if exc.os_error and exc.os_error.strerror else _describe(exc)
        return ConnectionFailed(f"cannot connect to {_origin(url)}: {cause}")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectionFailed(f"cannot connect to {_origin(url)}: connection timed out")
    if isinstance(exc, asyncio.TimeoutError):
        return Timeout("the API did not answer in time")
    return Ambiguous(f"connection lost before the answer arrived: {_describe(exc)}")
