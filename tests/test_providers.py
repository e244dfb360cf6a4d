"""The provider seam: a second dialect, registered from outside, runs jobs through the engine.

The toy provider below has its own routes, status words, answer shape and error body, and is
served by a tiny aiohttp app on loopback. Nothing in the engine knows about it: a model file
names it, the registry makes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from engine_helpers import FAST, POLL, write_manifest

from octobatch.engine import Engine, EngineOptions
from octobatch.errors import OctobatchError
from octobatch.jobs import ApiRequest
from octobatch.manifest import load_manifest
from octobatch.plan import make_plan, observe_outputs
from octobatch.progress import Event
from octobatch.providers import PROVIDERS, Providers, TaskState, VideoStatus, connect
from octobatch.providers.base import parse_progress, text
from octobatch.providers.octopusx import encode_id
from octobatch.schemas import default_schema_dir
from octobatch.simulator import DEMO_KEY, Simulator
from octobatch.state import StateStore, Status, load_state
from octobatch.transport import (
    ApiError,
    Downloaded,
    Finish,
    TaskNotFound,
    Transport,
    http_error,
)

TOY_KEY = "toy-key-1"
PHASES = {"WAITING": TaskState.QUEUED, "BAKING": TaskState.RUNNING,
          "READY": TaskState.COMPLETED, "BURNT": TaskState.FAILED}


class Toy:
    """A dialect unlike octopusx: `/jobs`, `ref`, `phase`, `pct`, `result.file`, `problem`."""

    name = "toy"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def content_url(self, task_id: str) -> str:
        return self.transport.url(f"/blobs/{quote(task_id, safe='')}")

    async def submit(self, request: ApiRequest, idempotency_key: str) -> VideoStatus:
        data = await self.transport.request_json(
            "POST", self.transport.url("/jobs"), self.read_error,
            headers={"X-Request-Key": idempotency_key}, json_body=request.json or {})
        return self.read_video(data, fallback_id=None)

    async def poll(self, task_id: str) -> VideoStatus:
        url = self.transport.url(f"/jobs/{quote(task_id, safe='')}")
        return self.read_video(await self.transport.request_json("GET", url, self.read_error),
                               fallback_id=task_id)

    async def download(self, url: str, dest: Path, then: Finish | None = None) -> Downloaded:
        return await self.transport.download(url, dest, self.read_error, then)

    def read_video(self, data: Mapping[str, Any], fallback_id: str | None) -> VideoStatus:
        word = text(data.get("phase"))
        state = PHASES.get(word, TaskState.UNKNOWN)
        result = data.get("result")
        file = text(result.get("file")) if isinstance(result, dict) else ""
        return VideoStatus(
            task_id=text(data.get("ref")) or fallback_id or "",
            state=state, status_word=word, progress=parse_progress(data.get("pct")),
            video_url=self.transport.url(file) if state is TaskState.COMPLETED and file else None,
            error={"code": "burnt", "message": "the toy burnt it"}
            if state is TaskState.FAILED else None,
        )

    def read_error(self, status: int, body: str, retry_after: str | None) -> ApiError:
        problem = json.loads(body).get("problem", "") if body.startswith("{") else body
        return http_error(status, problem or None, problem, None)


class ToyServer:
    """Each task is WAITING on its first poll, BAKING on the second, READY after."""

    def __init__(self) -> None:
        self.polls: dict[str, int] = {}
        self.submissions: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.busy_left = 1  # the first submission is refused as busy (a 429)

    def video(self, ref: str) -> bytes:
        return b"\x00\x00\x00\x18ftypmp42" + ref.encode() * 100

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/jobs", self._submit)
        app.router.add_get("/jobs/{ref}", self._poll)
        app.router.add_get("/blobs/{ref}", self._blob)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.paths.append(request.path)
        if request.headers.get("Authorization") != f"Bearer {TOY_KEY}":
            return web.json_response({"problem": "who are you"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def _submit(self, request: web.Request) -> web.Response:
        if self.busy_left:
            self.busy_left -= 1
            return web.json_response({"problem": "busy"}, status=429)
        body = await request.json()
        ref = f"toy/{len(self.submissions)}"  # a '/' in the id: it must be encoded
        self.submissions.append(body)
        self.polls[ref] = 0
        return web.json_response({"ref": ref, "phase": "WAITING"}, status=202)

    async def _poll(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref not in self.polls:
            return web.json_response({"problem": "no such job"}, status=404)
        self.polls[ref] += 1
        n = self.polls[ref]
        if n == 1:
            return web.json_response({"ref": ref, "phase": "WAITING"})
        if n == 2:
            return web.json_response({"ref": ref, "phase": "BAKING", "pct": 50})
        return web.json_response({"ref": ref, "phase": "READY",
                                  "result": {"file": f"/blobs/{quote(ref, safe='')}"}})

    async def _blob(self, request: web.Request) -> web.Response:
        return web.Response(body=self.video(request.match_info["ref"]),
                            content_type="video/mp4")


@pytest.fixture
async def toy_server() -> AsyncIterator[tuple[ToyServer, str]]:
    server = ToyServer()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield server, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def toy_schemas(tmp_path: Path) -> Path:
    """The shipped model files plus one served by the toy provider."""
    schemas = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), schemas)
    (schemas / "models" / "toy-video.schema.json").write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-octobatch": {"transport": "json", "provider": "toy"},
        "type": "object",
        "properties": {"model": {"const": "toy-video"},
                       "prompt": {"type": "string", "minLength": 1}},
        "required": ["model", "prompt"],
        "additionalProperties": False,
    }))
    return schemas


async def test_a_second_provider_runs_jobs_through_the_unchanged_engine(
    tmp_path: Path, toy_server: tuple[ToyServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, base_url = toy_server
    monkeypatch.setitem(PROVIDERS, "toy", Toy)
    schemas = toy_schemas(tmp_path)
    path = write_manifest(tmp_path, [{"id": f"toy-{i}", "prompt": f"cake {i}"} for i in range(3)],
                          defaults={"model": "toy-video"})
    manifest = load_manifest(path, schema_dir=schemas)
    store = StateStore.open(manifest.path)
    events: list[Event] = []
    try:
        plan = make_plan(manifest.jobs, store.state, observe_outputs(store.lock_dir, store.state))
        options = EngineOptions(output_dir=manifest.output_dir, concurrency=2,
                                poll_interval=POLL, retry=FAST, schema_dir=schemas)
        async with Transport(base_url, TOY_KEY, concurrency=2) as transport:
            result = await Engine(store, Providers(transport), options, events.append).run(plan)
    finally:
        store.close()

    assert (result.completed, result.failed, result.unfinished) == (3, 0, 0)
    assert sorted(s["prompt"] for s in server.submissions) == ["cake 0", "cake 1", "cake 2"]
    assert not any(p.startswith("/v1/") for p in server.paths)  # no octopusx route was used
    assert "throttled" in [e.name for e in events]  # the toy's 429 body was understood
    state = load_state(path)
    for job_id, entry in state.jobs.items():
        assert entry.status is Status.COMPLETED and entry.task_id.startswith("toy/")
        video = server.video(entry.task_id)
        on_disk = (tmp_path / "out" / f"{job_id}.mp4").read_bytes()
        assert on_disk == video and entry.sha256 == hashlib.sha256(video).hexdigest()


async def test_an_unknown_provider_name_says_what_to_check() -> None:
    async with Transport("http://127.0.0.1:9", "k") as transport:
        with pytest.raises(OctobatchError, match=r"unknown provider 'nope' \(known: .*octopusx"):
            Providers(transport).get("nope")


@pytest.mark.parametrize("task_id", [".", "..", "a/../b"])
async def test_dot_task_ids_reach_the_server_as_ids(simulator: Simulator, task_id: str) -> None:
    async with connect(simulator.base_url, DEMO_KEY) as provider:
        with pytest.raises(TaskNotFound):
            await provider.poll(task_id)
    assert [r.task_id for r in simulator.requests if r.kind == "poll"] == [task_id]


@pytest.mark.parametrize(("task_id", "segment"), [
    (".", "%2E"), ("..", "%2E%2E"), ("a/../b", "a%2F%2E%2E%2Fb"), ("task:1", "task%3A1")])
def test_task_ids_cannot_change_the_request_path(task_id: str, segment: str) -> None:
    assert encode_id(task_id) == segment
