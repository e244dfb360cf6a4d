"""`octobatch review`: the gallery served on loopback, with controls that record decisions.

Every route wants the server's random token (header `X-Octobatch-Token` or query `token`), so
no other web page the user has open, and no other user of the machine, can read the gallery or
write a decision: a cross-site form post or a DNS-rebinding page does not know the token.

Routes: `GET /` the page; `GET /file?path=P` a video or input image the page links (only files
the manifest and lockfile name, never anything else); `GET /api/jobs/{id}` one job;
`POST /api/jobs/{id}/review` a decision (see review.py). Errors are JSON `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from octobatch.errors import OctobatchError
from octobatch.gallery.page import Review, render_gallery
from octobatch.gallery.review import ReviewError, job_json, parse_request, record_review
from octobatch.manifest import Manifest, load_manifest
from octobatch.state import load_state

TOKEN_HEADER = "X-Octobatch-Token"
MAX_BODY = 16 * 1024  # a decision is a few bytes


@dataclass
class ReviewConfig:
    manifest: Path
    allow_outside_files: bool = False
    allow_outside_output: bool = False
    output_dir: str | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))


class _Gallery:
    """The manifest (reloaded when its file changes) and what the page may link."""

    def __init__(self, config: ReviewConfig) -> None:
        self.config = config
        self._manifest: Manifest | None = None
        self._stamp: tuple[int, int] | None = None
        self.write_lock = asyncio.Lock()  # one decision at a time: each takes the run lock

    def manifest(self) -> Manifest:
        st = os.stat(self.config.manifest)
        stamp = (st.st_mtime_ns, st.st_size)
        if self._manifest is None or stamp != self._stamp:
            self._manifest = load_manifest(self.config.manifest,
                                           allow_outside_files=self.config.allow_outside_files,
                                           allow_outside_output=self.config.allow_outside_output,
                                           output_dir=self.config.output_dir)
            self._stamp = stamp
        return self._manifest

    def link(self, path: Path) -> str:
        rel = os.path.relpath(path, self.manifest().lock_path.parent)
        # The path goes in the query: a path segment's `..` would be folded away by the browser.
        return f"/file?path={quote(rel, safe='')}&token={quote(self.config.token)}"

    def servable(self) -> set[str]:
        """Absolute paths of every file the page links: outputs, takes, input images."""
        manifest = self.manifest()
        lock_dir = manifest.lock_path.parent
        paths = {str(f.path) for job in manifest.jobs for f in job.files
                 if f.media_type.startswith("image/")}
        for job_id, entry in load_state(manifest.path).jobs.items():
            outputs = [entry.output, *(t.output for t in entry.take_history())]
            # Only names octobatch gives a job's videos: a committed lockfile is the
            # repository's word, and must not make the page serve `../../.ssh/id_rsa`.
            paths.update(os.path.abspath(lock_dir / o) for o in outputs
                         if o and _is_job_video(job_id, os.path.basename(o)))
        return paths


def _is_job_video(job_id: str, name: str) -> bool:
    """`<id>.mp4` or `<id>.take<N>.mp4`, the names octobatch writes a job's videos under."""
    return name == f"{job_id}.mp4" or re.fullmatch(re.escape(job_id) + r"\.take\d+\.mp4",
                                                   name) is not None


def make_app(config: ReviewConfig) -> web.Application:
    gallery = _Gallery(config)
    app = web.Application(middlewares=[_errors_as_json, _token_required(config.token)],
                          client_max_size=MAX_BODY)

    async def page(request: web.Request) -> web.Response:
        manifest = await asyncio.to_thread(gallery.manifest)
        text = await asyncio.to_thread(
            lambda: render_gallery(manifest, load_state(manifest.path), link=gallery.link,
                                   review=Review(token=config.token)))
        return web.Response(text=text, content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def file(request: web.Request) -> web.StreamResponse:
        rel = request.query.get("path", "")
        manifest = await asyncio.to_thread(gallery.manifest)
        path = os.path.abspath(manifest.lock_path.parent / rel)
        if not rel or path not in await asyncio.to_thread(gallery.servable) \
                or not os.path.isfile(path):
            raise _json_error(404, f"no such file in this gallery: {rel!r}")
        if os.path.islink(path):  # inputs are resolved paths: only a planted video is a link
            raise _json_error(404, f"{rel} is a symbolic link; octobatch shows only the videos "
                              "it wrote")
        return web.FileResponse(path, headers={"Cache-Control": "no-store"})

    async def job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        manifest = await asyncio.to_thread(gallery.manifest)
        entry = (await asyncio.to_thread(load_state, manifest.path)).jobs.get(job_id)
        if entry is None:
            raise _json_error(404, f"no job {job_id!r} in {manifest.lock_path.name}")
        return web.json_response(job_json(job_id, entry))

    async def review(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _json_error(400, "the body is not JSON; send e.g. "
                              '{"decision": "approved"} with Content-Type: application/json') from None
        try:
            wanted = parse_request(body)
            manifest = await asyncio.to_thread(gallery.manifest)
            async with gallery.write_lock:
                entry = await asyncio.to_thread(record_review, manifest.path, job_id, wanted,
                                                output_dir=manifest.output_dir)
        except ReviewError as exc:
            raise _json_error(exc.status, str(exc)) from None
        return web.json_response(job_json(job_id, entry))

    app.router.add_get("/", page)
    app.router.add_get("/file", file)
    app.router.add_get("/api/jobs/{job_id}", job)
    app.router.add_post("/api/jobs/{job_id}/review", review)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _token_required(token: str) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(TOKEN_HEADER) or request.query.get("token") or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise _json_error(403, "missing or wrong token: open the URL `octobatch review` "
                              f"printed (it carries ?token=...), or send the {TOKEN_HEADER} header")
        return await handler(request)

    return check


class _Refused(Exception):
    """An answer other than 2xx, sent as JSON `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json_error(status: int, message: str) -> _Refused:
    return _Refused(status, message)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as JSON: ours, aiohttp's own (unknown route, wrong method, body too large),
    and a bad manifest or lockfile as its message rather than a traceback."""
    try:
        return await handler(request)
    except _Refused as exc:
        status, message = exc.status, str(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status, message = exc.status, exc.reason
    except (OctobatchError, OSError) as exc:
        status, message = 500, str(exc)
    return web.json_response({"error": message}, status=status)


async def serve(config: ReviewConfig, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Start serving; return the runner (to clean up) and the URL with the token."""
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    shown_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"http://{shown_host}:{bound[1]}/?token={config.token}"
