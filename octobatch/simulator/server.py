"""The simulator's HTTP server: the provider's routes on loopback, with inspection.

Handlers stay cheap (a dict lookup, arithmetic on the clock, O(1) recording) because the
benchmark drives thousands of polls per second through them.
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import BodyPartReader, web

from octobatch.simulator import ranges, replies, seedance2
from octobatch.simulator.faults import FaultDice, Faults, Route
from octobatch.simulator.tasks import FAIL_MARKER, STUCK_MARKER, Outcome, Task, video_object
from octobatch.simulator.usage import KeyUsage
from octobatch.simulator.validation import (
    Rejected,
    Submission,
    UnknownModel,
    check_json,
    check_multipart,
    check_seedance2,
)
from octobatch.simulator.video import video_file

DEMO_KEY = "sk-demo-octobatch"

RequestKind = Literal["submit", "poll", "content", "download", "usage"]
DROPPED = 0  # the status recorded when the connection was closed without an answer
_MAX_BODY = 32 * 1024 * 1024  # a 15 MB reference video is ~20 MB as base64 JSON
_CHUNK = 64 * 1024
_STALL_CHECK = 0.05  # seconds between looks at a stalled connection
_ERROR_FAULTS = frozenset({"429", "429_bare", "500", "502", "503"})

log = logging.getLogger("octobatch.simulator")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the simulator answered (or dropped: status 0)."""

    kind: RequestKind
    task_id: str | None
    model: str | None
    prompt: str | None
    idempotency_key: str | None
    status: int
    time: float  # simulator clock


class Simulator:
    """The octopusx video API on loopback, with the faults of a bad night.

    `latency` is how long a task takes from submission to completion (plus a uniform random
    -jitter..+jitter); `fail_rate` fails that fraction of tasks, and a prompt containing
    "[fail]" always fails ("[stuck]" never finishes). `video_bytes` pads every served MP4 to at
    least that size. `seed` makes faults, ids and jitter reproducible; `clock` drives task
    progress, so tests can advance time by hand. `adopt_unknown_tasks` answers a poll of an
    unknown task id as a finished task instead of `task_not_exist` (for `run --simulate`).
    `usage` is what `GET /api/usage/token/` reports for the key; None leaves the route out,
    as on a gateway that does not offer it. `extra_models` (name -> "json" or "multipart")
    are served besides the documented ones, their fields unchecked: a project's own models.
    """

    def __init__(self, *, latency: float = 2.0, jitter: float = 0.0, faults: Faults | None = None,
                 api_key: str = DEMO_KEY, video_bytes: int | None = None, fail_rate: float = 0.0,
                 seed: int | None = None, clock: Callable[[], float] = time.monotonic,
                 adopt_unknown_tasks: bool = False, usage: KeyUsage | None = KeyUsage(),
                 extra_models: Mapping[str, str] | None = None) -> None:
        if latency < 0 or jitter < 0:
            raise ValueError("latency and jitter must be >= 0")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail_rate must be in 0..1")
        self.latency = latency
        self.jitter = jitter
        self.faults = faults or Faults()
        self.fail_rate = fail_rate
        self.video_bytes = video_bytes
        self.clock = clock
        self.adopt_unknown_tasks = adopt_unknown_tasks
        self.usage = usage
        self.extra_models = dict(extra_models or {})
        self._auth = f"Bearer {api_key}"
        self._rng = random.Random(seed)
        self._dice = FaultDice(self.faults, random.Random(self._rng.random()))
        self._tokens: dict[str, Task] = {}
        self._by_idempotency_key: dict[str, Task] = {}
        self._unfinished: list[float] = []  # heap of finish times of tasks not yet finished
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._bound: tuple[str, int] = ("127.0.0.1", 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outage_tasks: set[asyncio.Task[None]] = set()
        self.base_url = ""
        self.outages: list[tuple[float, float]] = []  # (start, end) on the loop's clock

        self.requests: list[RecordedRequest] = []
        self.tasks: dict[str, Task] = {}
        self._created_per_prompt: Counter[str] = Counter()
        self.polls_per_task: Counter[str] = Counter()
        self.downloads_per_task: Counter[str] = Counter()
        self.bytes_sent_per_task: Counter[str] = Counter()  # body bytes written, cut ones too
        self._stopping = False
        self.peak_in_flight = 0

        self.app = web.Application(client_max_size=_MAX_BODY)
        self.app.router.add_post("/v1/videos", self._submit)
        self.app.router.add_get("/v1/videos/{task_id}", self._poll)
        self.app.router.add_get("/v1/videos/{task_id}/content", self._content)
        # Seedance 2.0's route family: the same tasks, another request and answer shape.
        self.app.router.add_post(seedance2.ROUTE, self._submit)
        self.app.router.add_get(seedance2.ROUTE + "/{task_id}", self._poll)
        self.app.router.add_get("/files/{name}", self._download)
        self.app.router.add_get("/api/status", self._platform_status)
        if usage is not None:
            self.app.router.add_get("/api/usage/token", self._usage)
            self.app.router.add_get("/api/usage/token/", self._usage)
        self.app.router.add_route("*", "/api/{tail:.*}", self._platform_not_found)
        self.app.router.add_route("*", "/{tail:.*}", self._not_found)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0 picks a free port); returns the base URL."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        self._loop = asyncio.get_running_loop()
        bound_host, bound_port = runner.addresses[0][:2]
        self._bound = (bound_host, bound_port)
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown}:{bound_port}"
        f = self.faults
        if f.outage_seconds:
            self.schedule_outage(f.outage_at, f.outage_seconds, every=f.outage_every)
        return self.base_url

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._outage_tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None

    # -- outages -----------------------------------------------------------------------------

    async def begin_outage(self) -> None:
        """Stop listening and drop every open connection (kept-alive ones and requests in
        flight, downloads mid-body included): clients see refused connections until
        `end_outage`. Tasks keep running meanwhile, as they would at the provider."""
        if self._runner is None or self._site is None:
            return
        await self._site.stop()
        self._site = None
        server = self._runner.server
        for handler in server.connections if server is not None else []:
            handler.force_close()
        self.outages.append((asyncio.get_running_loop().time(), float("inf")))
        log.info("outage: stopped listening on %s and dropped every connection", self.base_url)

    async def end_outage(self) -> None:
        """Listen again on the same address and port, with the same tasks."""
        if self._runner is None or self._site is not None:
            return
        site = web.TCPSite(self._runner, *self._bound)
        await site.start()
        self._site = site
        if self.outages:
            self.outages[-1] = (self.outages[-1][0], asyncio.get_running_loop().time())
        log.info("outage over: listening on %s again", self.base_url)

    async def outage(self, seconds: float) -> None:
        """An outage of `seconds`, returning when the server listens again."""
        await self.begin_outage()
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.end_outage()

    def schedule_outage(self, after: float, seconds: float, *, every: float = 0.0) -> None:
        """Start an outage of `seconds` in `after` seconds (repeated every `every` seconds when
        given), without waiting for it. Safe to call from any thread once started, so a test
        holding a `SimulatorThread` can cut the network under a subprocess."""
        if self._loop is None:
            raise RuntimeError("start the simulator before scheduling an outage")

        async def run() -> None:
            await asyncio.sleep(after)
            while True:
                await self.outage(seconds)
                if not every:
                    return
                await asyncio.sleep(every - seconds)

        def launch() -> None:
            task = asyncio.ensure_future(run())
            self._outage_tasks.add(task)
            task.add_done_callback(self._outage_tasks.discard)

        self._loop.call_soon_threadsafe(launch)

    # -- inspection --------------------------------------------------------------------------

    def tasks_created_per_prompt(self) -> Counter[str]:
        """How many tasks each prompt created: more than 1 means a job was paid for twice."""
        return Counter(self._created_per_prompt)

    def in_flight(self) -> int:
        """Tasks created and not yet finished at the provider, now."""
        now = self.clock()
        while self._unfinished and self._unfinished[0] <= now:
            heapq.heappop(self._unfinished)
        return len(self._unfinished)

    def expected_video(self, task_id: str) -> bytes:
        """Exactly the bytes a client should end up with for `task_id`."""
        if task_id not in self.tasks:
            raise KeyError(f"no task {task_id!r} was created")
        video = video_file(task_id, self.video_bytes, self.tasks[task_id].version)
        return video.read(0, video.size)

    # -- helpers -----------------------------------------------------------------------------

    def _record(self, kind: RequestKind, request: web.Request, status: int,
                task_id: str | None = None, submission: Submission | None = None, *,
                fault: str | None = None) -> None:
        self.requests.append(RecordedRequest(
            kind, task_id,
            submission.model if submission else None,
            submission.prompt if submission else None,
            request.headers.get("Idempotency-Key"), status, self.clock(),
        ))
        if log.isEnabledFor(logging.INFO):  # the poll path stays cheap when nobody listens
            answer = "dropped" if status == DROPPED else str(status)
            extra = f" (fault: {fault})" if fault else ""
            shown = f" task {task_id}" if task_id and kind == "submit" else ""
            ranged = request.headers.get("Range")
            asked = f" [{ranged}]" if ranged else ""
            log.info("%s %s%s -> %s%s%s", request.method, request.path, asked, answer, shown,
                     extra)

    def _key_expired(self) -> bool:
        return self.usage is not None and self.usage.expired(time.time())

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == self._auth and not self._key_expired()

    async def _hold_back(self) -> None:
        delay = self.faults.response_delay
        if self.faults.response_delay_jitter:
            delay += self._rng.uniform(0, self.faults.response_delay_jitter)
        if delay:
            await asyncio.sleep(delay)

    async def _roll(self, route: Route) -> str | None:
        await self._hold_back()
        return self._dice.roll(route)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        # The request was read; the connection goes away with no answer at all. aiohttp
        # quietly discards the response returned for a closed transport.
        if request.transport is not None:
            request.transport.close()
        return web.Response()

    def _create(self, submission: Submission, idempotency_key: str | None) -> Task:
        now = self.clock()
        outcome: Outcome = "completed"
        if FAIL_MARKER in submission.prompt:
            outcome = "failed"
        elif STUCK_MARKER in submission.prompt:
            outcome = "stuck"
        elif self.fail_rate and self._rng.random() < self.fail_rate:
            outcome = "failed"
        duration = self.latency
        if self.jitter:
            duration = max(0.0, duration + self._rng.uniform(-self.jitter, self.jitter))
        task_id = f"{self.faults.task_id_prefix}{self._rng.getrandbits(96):024x}"
        task = Task(task_id, submission.model, submission.prompt, submission.params,
                    idempotency_key, now, int(time.time()), duration, outcome)
        self.tasks[task_id] = task
        self._created_per_prompt[submission.prompt] += 1
        if idempotency_key is not None:
            self._by_idempotency_key[idempotency_key] = task
        heapq.heappush(self._unfinished, task.finishes_at)
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight())
        return task

    def _find(self, task_id: str) -> Task | None:
        task = self.tasks.get(task_id)
        if task is None and self.adopt_unknown_tasks:
            # `run --simulate` starts a fresh simulator per run, so the tasks an interrupted
            # demo left "at the provider" are unknown here: treat them as having finished
            # meanwhile, as real ones would, so the documented resume works in the demo too.
            now = self.clock()
            task = Task(task_id, "unknown", "", {}, None, now, int(time.time()), 0.0, "completed")
            self.tasks[task_id] = task
        return task

    def _download_url(self, request: web.Request, task: Task, now: float) -> str:
        """The task's current signed link; a fresh one once the old one has expired."""
        if task.url_token is None or now >= task.url_expires:
            task.url_token = f"{self._rng.getrandbits(128):032x}"
            ttl = self.faults.url_ttl
            task.url_expires = now + ttl if ttl else float("inf")
            self._tokens[task.url_token] = task
        return f"{request.scheme}://{request.host}/files/{task.url_token}.mp4"

    def _render(self, request: web.Request, task: Task, *, just_created: bool = False
                ) -> web.Response:
        now = self.clock()
        url = None
        if (not just_created and self.faults.url_location != "content"
                and task.phase(now)[0] == "completed"):
            url = self._download_url(request, task, now)
        if request.path.startswith(seedance2.ROUTE):
            return web.json_response(seedance2.created(task) if just_created
                                     else seedance2.task_answer(task, now, url))
        return web.json_response(video_object(task, now, self.faults, url,
                                              just_created=just_created))

    async def _read_submission(self, request: web.Request) -> Submission:
        if request.content_type == "multipart/form-data":
            form: dict[str, str] = {}
            files: dict[str, list[bytes]] = {}  # a file field may repeat (grok references)
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or not part.name:
                    raise Rejected("malformed multipart body")
                if part.name in form or (part.filename is None and part.name in files):
                    raise Rejected(f"field '{part.name}' given more than once")
                if part.filename is not None:
                    files.setdefault(part.name, []).append(bytes(await part.read()))
                else:
                    form[part.name] = await part.text()
            return check_multipart(form, files, self.extra_models)
        if request.content_type == "application/json":
            try:
                body = json.loads(await request.read())
            except (ValueError, UnicodeDecodeError):
                raise Rejected("the body is not valid JSON") from None
            if not isinstance(body, dict):
                raise Rejected("the JSON body must be an object")
            if request.path == seedance2.ROUTE:
                return check_seedance2(body)
            return check_json(body, self.extra_models)
        raise Rejected("send multipart/form-data or application/json, as the model's page says")

    # -- routes ------------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            self._record("submit", request, 401)
            return replies.unauthorized(self._key_expired())
        try:
            submission = await self._read_submission(request)
        except UnknownModel as exc:
            self._record("submit", request, exc.status)
            return replies.openai_error(exc.status, exc.message, code=exc.code)
        except Rejected as exc:
            self._record("submit", request, exc.status)
            return replies.task_error(exc.status, exc.code, exc.message)
        fault = await self._roll("submit")
        if fault in ("429", "429_bare", "500", "503"):
            self._record("submit", request, int(fault[:3]), submission=submission, fault=fault)
            return replies.injected_fault(fault, self.faults.retry_after)
        key = request.headers.get("Idempotency-Key")
        if self.faults.honour_idempotency and key in self._by_idempotency_key:
            task = self._by_idempotency_key[key]
            self._record("submit", request, 200, task.id, submission)
            return self._render(request, task)
        limit = self.faults.concurrency_limit
        if limit and self.in_flight() >= limit:
            self._record("submit", request, 429, submission=submission,
                         fault="concurrency_limit")
            return replies.openai_error(
                429, f"当前令牌并发任务数已达上限 {limit} (concurrency limit of {limit} tasks reached)",
                code="token_concurrency_limit_reached")
        task = self._create(submission, key)
        if fault == "drop":
            self._record("submit", request, DROPPED, task.id, submission, fault=fault)
            return self._drop(request)
        if fault == "502":
            self._record("submit", request, 502, task.id, submission, fault=fault)
            return replies.injected_fault(fault, self.faults.retry_after)
        self._record("submit", request, 200, task.id, submission)
        return self._render(request, task, just_created=True)

    async def _poll(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        self.polls_per_task[task_id] += 1
        if not self._authorized(request):
            self._record("poll", request, 401, task_id)
            return replies.unauthorized(self._key_expired())
        fault = await self._roll("poll")
        if fault == "drop":
            self._record("poll", request, DROPPED, task_id, fault=fault)
            return self._drop(request)
        if fault is not None:
            self._record("poll", request, int(fault[:3]), task_id, fault=fault)
            return replies.injected_fault(fault, self.faults.retry_after)
        task = self._find(task_id)
        if task is None:
            self._record("poll", request, 400, task_id)
            return replies.task_error(400, "task_not_exist", "任务不存在 (task does not exist)")
        self._record("poll", request, 200, task_id)
        return self._render(request, task)

    async def _content(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        self.downloads_per_task[task_id] += 1
        if not self._authorized(request):
            self._record("content", request, 401, task_id)
            return replies.unauthorized(self._key_expired())
        task = self._find(task_id)
        if task is None:
            self._record("content", request, 400, task_id)
            return replies.task_error(400, "task_not_exist", "任务不存在 (task does not exist)")
        if task.phase(self.clock())[0] != "completed":
            self._record("content", request, 400, task_id)
            return replies.task_error(400, "task_not_completed",
                                      "任务尚未完成 (the video is not ready)")
        return await self._send_video("content", request, task)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["name"].removesuffix(".mp4")
        task = self._tokens.get(token)
        if task is not None:
            self.downloads_per_task[task.id] += 1
        if task is None:
            self._record("download", request, 404)
            return replies.signed_link_error(404, "NoSuchKey", "The specified key does not exist.")
        if token != task.url_token or self.clock() >= task.url_expires:
            self._record("download", request, 403, task.id)
            return replies.signed_link_error(403, "AccessDenied", "Request has expired")
        return await self._send_video("download", request, task)

    async def _send_video(self, kind: RequestKind, request: web.Request,
                          task: Task) -> web.StreamResponse:
        fault = await self._roll("download")
        if fault == "drop":
            self._record(kind, request, DROPPED, task.id, fault=fault)
            return self._drop(request)
        if fault in _ERROR_FAULTS:
            self._record(kind, request, int(fault[:3]), task.id, fault=fault)
            return replies.injected_fault(fault, self.faults.retry_after)
        if fault == "html":
            self._record(kind, request, 200, task.id, fault=fault)
            return web.Response(text=replies.HTML_ERROR_PAGE, content_type="text/html")
        self._replace_object_if_due(task)
        video = video_file(task.id, self.video_bytes, task.version)
        etag, last_modified = ranges.validators(task.id, task.version, task.modified)
        headers = {"Content-Type": "video/mp4", "ETag": etag, "Last-Modified": last_modified}
        start, end, status = 0, video.size, 200
        if not self.faults.ignore_range:
            headers["Accept-Ranges"] = "bytes"
            try:
                wanted = ranges.requested_range(request.headers.get("Range"),
                                                request.headers.get("If-Range"), video.size,
                                                etag, last_modified)
            except ranges.Unsatisfiable:
                self._record(kind, request, 416, task.id)
                return web.Response(status=416, headers={**headers,
                                                         "Content-Range": f"bytes */{video.size}"})
            if wanted is not None:
                (start, end), status = wanted, 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{video.size}"
        elif "Range" in request.headers:
            fault = fault or "ignore_range"
        body: bytes | None = None
        if (status == 200 and self.faults.download_gzip
                and "gzip" in request.headers.get("Accept-Encoding", "")):
            body = gzip.compress(video.read(0, video.size), compresslevel=1)
            headers["Content-Encoding"] = "gzip"
            fault = fault or "gzip"
        length = len(body) if body is not None else end - start
        self._record(kind, request, status, task.id, fault=fault)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = length + (1024 if fault == "overlong" else 0)
        await response.prepare(request)

        def read(offset: int, upto: int) -> bytes:
            if body is not None:
                return body[offset:upto]
            return video.read(start + offset, start + upto)

        stop = length
        if fault in ("truncate", "stall"):
            stop = length // 2
        cut = self._dice.cut_point(stop, self.faults.cut_chunk_rate, _CHUNK)
        if cut is not None:
            stop, fault = cut, "cut_chunk"
        sent = await self._stream(request, response, task, read, stop,
                                  expiring=kind == "download" and self.faults.url_ttl_cuts_downloads)
        if request.transport is None or request.transport.is_closing():
            return response  # the client left (or an outage cut it): nothing more to do
        if sent < length or fault == "overlong":
            what = "cut the connection" if fault in ("truncate", "cut_chunk") or sent < stop \
                else "stalled"
            self._log_fault(task, f"{fault or 'url_ttl'}: {what} after {sent} of {length} bytes")
            if what == "stalled":
                await self._stall(request)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response

    async def _stream(self, request: web.Request, response: web.StreamResponse, task: Task,
                      read: Callable[[int, int], bytes], stop: int, *, expiring: bool) -> int:
        """Write bytes 0..stop of the body; returns how many went out (fewer when the link
        expired under `url_ttl_cuts_downloads`)."""
        rate = self.faults.download_bytes_per_second
        # Throttled: a tenth of a second's worth per write, so the rate holds at any size.
        step = min(_CHUNK, max(1, int(rate / 10))) if rate else _CHUNK
        offset = 0
        while offset < stop:
            if expiring and self.clock() >= task.url_expires:
                break
            piece = read(offset, min(offset + step, stop))
            if rate:  # pause before each piece, so the last one arrives on time too
                await asyncio.sleep(len(piece) / rate)
            try:
                await response.write(piece)
            except ConnectionResetError:  # the client went away: nothing more to send
                log.info("task %s: the client closed the connection after %d bytes", task.id,
                         offset)
                break
            offset += len(piece)
            self.bytes_sent_per_task[task.id] += len(piece)
        return offset

    async def _stall(self, request: web.Request) -> None:
        # Silence on an open connection until the client gives up or the simulator stops.
        while not self._stopping and request.transport is not None \
                and not request.transport.is_closing():
            await asyncio.sleep(_STALL_CHECK)

    def _replace_object_if_due(self, task: Task) -> None:
        task.download_requests += 1
        if task.download_requests > 1 and task.version < self.faults.object_changes:
            task.version += 1
            # A new Last-Modified even within the same second as the previous version.
            task.modified = max(int(time.time()), task.modified + 1)
            self._log_fault(task, f"object_changes: the file is now version {task.version}")

    def _log_fault(self, task: Task, what: str) -> None:
        log.info("fault for task %s: %s", task.id, what)

    async def _platform_status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"success": True, "message": "", "data": {"system_name": "octopusx (simulated)"}})

    async def _usage(self, request: web.Request) -> web.Response:
        assert self.usage is not None  # the route exists only with a KeyUsage
        if not self._authorized(request):
            self._record("usage", request, 401)
            return replies.platform_error(401, replies.refusal(self._key_expired()))
        self._record("usage", request, 200)
        return web.json_response(self.usage.body())

    async def _platform_not_found(self, request: web.Request) -> web.Response:
        return replies.platform_error(404, f"未找到 (no such platform route: {request.path})")

    async def _not_found(self, request: web.Request) -> web.Response:
        return replies.openai_error(404, f"Invalid URL ({request.method} {request.path})",
                                    type_="invalid_request_error")
