"""A provider that answers anything: generated hostile answers through the real engine.

A loopback server plays the provider from a script of answers (wrong types, NaN and
infinities, huge and deeply nested bodies, missing fields, odd status words, the API key
echoed back in every form). Whatever it says, the engine must finish every job with a clear
outcome, never raise out of a job, never lose a task id it was given, and never store, print
or emit the key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from engine_helpers import FAST, prompts_jobs, run_engine, write_manifest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from octobatch.download import DownloadLimits
from octobatch.simulator.video import video_for

KEY = "sk-hostile-Secret/key+42"
# The key as written, percent-encoded (upper- and lower-case hex), and JSON-escaped: the last
# form goes into raw bodies only, where parsing turns it back into the key.
ECHOES = [KEY, quote(KEY, safe=""), quote(KEY, safe="").replace("%2F", "%2f"),
          "\\u0073k-hostile-Secret/key+42"]
LIMITS = DownloadLimits(stall_seconds=0.5, deadline_seconds=2)
# Every wait tiny, so an example ends in a fraction of a second however the provider behaves.
POLICY = dataclasses.replace(FAST, breaker_cooldown=0.01, breaker_cooldown_cap=0.02,
                             task_not_found_window=0.02)
BASE = "{base}"  # replaced by the server's URL when an answer is served

Answer = tuple[int, str]


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


json_leaf = (st.none() | st.booleans() | st.integers(min_value=-10 ** 40, max_value=10 ** 40)
             | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                          max_leaves=6)
echo = st.sampled_from(ECHOES[:3])
text_with_key = st.builds(lambda a, k, b: f"{a}{k}{b}", st.text(max_size=5), echo,
                          st.text(max_size=5))
task_ids = st.from_regex(r"task_[a-z0-9]{1,12}", fullmatch=True)
status_words = st.sampled_from(["queued", "pending", "in_progress", "processing", "completed",
                                "succeeded", "failed", "cancelled", "COMPLETED", "unknown",
                                "", "Infinity", "null"]) | json_value | text_with_key
progress = (st.integers(-5, 500) | st.floats(allow_nan=True, allow_infinity=True)
            | st.sampled_from(["50", "50%", "NaN", "1e999", "Infinity", "", "much"]) | json_value)
urls = st.sampled_from([f"{BASE}/files/video.mp4", f"{BASE}/files/video.mp4?sig={KEY}",
                        "/files/video.mp4", "", "not a url", "file:///etc/passwd",
                        "http://127.0.0.1:1/x.mp4", f"{BASE}/files/html.mp4"]) | json_value
errors = (json_value | st.fixed_dictionaries({}, optional={
    "message": text_with_key | json_value, "code": text_with_key | json_value}))

video_objects = st.fixed_dictionaries({}, optional={
    "id": task_ids | json_value, "task_id": task_ids | json_value, "status": status_words,
    "progress": progress, "video_url": urls, "metadata": st.fixed_dictionaries({"url": urls}),
    "data": st.lists(st.fixed_dictionaries({"url": urls}), max_size=2), "error": errors,
    "created_at": json_value,
})
CANNED = [
    "", "not json at all", "[1, 2, 3]", "null", '{"id": "task_x", "progress": 1e999}',
    '{"id": "task_x", "status": "running", "progress": NaN}', "[" * 50_000,
    '{"a":' * 20_000, '{"id": "task_big", "pad": "' + "x" * 1_500_000 + '"}',
    '{"error": {"message": "' + KEY + '", "code": "' + KEY + '"}}',
    '{"code": "task_not_exist", "message": "gone", "data": null}',
    '{"success": false, "message": "' + ECHOES[3] + '"}',
    '{"id": "task_esc", "status": "failed", "error": {"message": "' + ECHOES[3] + '"}}',
]
statuses = st.sampled_from([200, 200, 200, 200, 400, 401, 404, 429, 500, 502, 503])
answers = st.tuples(statuses, video_objects.map(_dumps) | st.sampled_from(CANNED))
submit_answers = st.one_of(
    # Usually a task is created, in whatever words; sometimes anything at all.
    st.tuples(st.just(200), st.builds(lambda obj, tid: {**obj, "id": tid}, video_objects,
                                      task_ids).map(_dumps)),
    answers)
endings = st.sampled_from([
    (200, _dumps({"id": "ignored", "status": "completed", "video_url": f"{BASE}/files/video.mp4"})),
    (200, _dumps({"status": "failed", "error": {"message": f"bad {KEY}", "code": KEY}})),
    (200, _dumps({"status": "completed", "metadata": {"url": f"{BASE}/files/html.mp4"}})),
])


@dataclass
class Script:
    submits: list[Answer]
    polls: list[Answer]
    given_ids: dict[str, str] = field(default_factory=dict)  # prompt -> id a 200 answer gave
    served: list[int] = field(default_factory=list)


class HostileProvider:
    """Serves a `Script`; the last poll answer repeats, so every task can end."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/videos", self._submit)
        app.router.add_get("/v1/videos/{task_id}", self._poll)
        app.router.add_get("/v1/videos/{task_id}/content", self._video)
        app.router.add_get("/files/video.mp4", self._video)
        app.router.add_get("/files/html.mp4", self._html)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _answer(self, answer: Answer) -> web.Response:
        status, body = answer
        return web.Response(status=status, text=body.replace(BASE, self.base_url),
                            content_type="application/json")

    async def _submit(self, request: web.Request) -> web.Response:
        prompt = str((await request.json()).get("prompt"))
        answer = self.script.submits.pop(0) if len(self.script.submits) > 1 \
            else self.script.submits[0]
        status, body = answer
        try:
            given = json.loads(body).get("id") if status == 200 else None
        except (ValueError, AttributeError, RecursionError):
            given = None
        if isinstance(given, str) and given.startswith("task_"):
            self.script.given_ids[prompt] = given
        return self._answer(answer)

    async def _poll(self, request: web.Request) -> web.Response:
        polls = self.script.polls
        return self._answer(polls.pop(0) if len(polls) > 1 else polls[0])

    async def _video(self, request: web.Request) -> web.Response:
        return web.Response(body=video_for("hostile"), content_type="video/mp4")

    async def _html(self, request: web.Request) -> web.Response:
        return web.Response(text=f"<html>{KEY}</html>", content_type="text/html")


async def _run(script: Script, tmp: Path) -> None:
    provider = HostileProvider(script)
    await provider.start()
    try:
        manifest = write_manifest(tmp, prompts_jobs(2))
        # A provider that answers 429 forever is waited on as long as the run goes on: the
        # run deadline bounds it, as it bounds a real night.
        outcome = await run_engine(provider, manifest, api_key=KEY, timeout=0.4,  # type: ignore[arg-type]
                                   policy=POLICY, download=LIMITS, concurrency=2, deadline=0.5)
    finally:
        await provider.stop()
    result = outcome.result
    assert result.completed + result.failed + result.unfinished == 2, result
    jobs = outcome.state.jobs
    for job_id, prompt in (("clip-0", "clip number 0"), ("clip-1", "clip number 1")):
        given = script.given_ids.get(prompt)
        if given is not None:  # a task id once known is never lost
            assert job_id in jobs and jobs[job_id].task_id == given, (given, jobs.get(job_id))
    for path in tmp.rglob("*"):
        if path.is_file() and not path.name.endswith(".mp4"):
            text = path.read_text("utf-8", errors="replace")
            assert not any(e in text for e in ECHOES[:3]) and "hostile-Secret" not in text, path
    shown = repr(outcome.events)
    assert "hostile-Secret" not in shown and quote(KEY, safe="") not in shown


# No shrinking: each example is a real run, and shrinking one took minutes. A failure prints
# the example as generated.
@settings(max_examples=20, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(submits=st.lists(submit_answers, min_size=1, max_size=3),
       polls=st.lists(answers, max_size=4), ending=endings)
def test_hostile_answers_never_escape_a_job_lose_a_task_or_leak_the_key(
        tmp_path_factory: Any, submits: list[Answer], polls: list[Answer],
        ending: Answer) -> None:
    tmp = tmp_path_factory.mktemp("hostile")
    asyncio.run(_run(Script(submits, [*polls, ending]), tmp))


def test_the_key_echoed_in_every_form_is_never_kept(tmp_path: Path) -> None:
    # Raw JSON text, so the escaped form reaches the parser as an escape.
    failed = ('{"id": "task_echo", "status": "failed", "error": {"message": "'
              + " ".join(ECHOES) + '", "code": "' + KEY + '"}}')
    script = Script([(200, _dumps({"id": "task_echo", "status": "queued"}))],
                    [(200, failed)])
    asyncio.run(_run(script, tmp_path))
    lock = (tmp_path / "batch.lock.json").read_text("utf-8")
    entry = json.loads(lock)["jobs"]["clip-0"]
    assert entry["task_id"] == "task_echo" and entry["status"] == "failed"
    assert entry["error"] == {"code": "***", "message": "*** *** *** ***"}
