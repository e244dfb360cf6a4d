"""`octobatch review`: the token, the review API and what it writes to the lockfile, over real
HTTP on loopback; and the command as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from reviewed_project import NOW, build_project, clip, lock_jobs

from octobatch.cli import main
from octobatch.gallery.review import ReviewRequest, record_review
from octobatch.gallery.server import ReviewConfig, serve
from octobatch.manifest import Manifest
from octobatch.state import StateStore, Status, journal_path_for, lock_path_for

TOKEN = "test-token-123"


@pytest.fixture
def project(tmp_path: Path) -> Manifest:
    return build_project(tmp_path)


@pytest.fixture
async def server(project: Manifest) -> AsyncIterator[str]:
    """The review server on a free loopback port; yields its base URL (without the token)."""
    runner, url = await serve(ReviewConfig(manifest=project.path, token=TOKEN), "127.0.0.1", 0)
    assert url.endswith(f"/?token={TOKEN}")
    try:
        yield url.split("/?")[0]
    finally:
        await runner.cleanup()


async def post(base: str, job: str, body: Any, headers: dict[str, str] | None = None,
               raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"X-Octobatch-Token": TOKEN} if headers is None else headers
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with http.post(f"{base}/api/jobs/{job}/review", headers=headers, **kwargs) as r:
            return r.status, await r.json()


async def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}{path}", headers=headers or {}) as r:
            return r.status, await r.read()


async def test_without_the_token_nothing_is_served_or_written(
    server: str, project: Manifest
) -> None:
    before = lock_path_for(project.path).read_bytes()
    for headers in ({}, {"X-Octobatch-Token": "wrong"}):
        status, answer = await post(server, "beach", {"decision": "approved"}, headers=headers)
        assert status == 403 and "token" in answer["error"]
        assert (await get(server, "/", headers))[0] == 403
        assert (await get(server, "/file?path=out%2Fbeach.mp4", headers))[0] == 403
    assert (await get(server, "/?token=wrong"))[0] == 403
    assert lock_path_for(project.path).read_bytes() == before


async def test_a_decision_lands_in_the_committed_lockfile(server: str, project: Manifest) -> None:
    status, job = await post(server, "beach", {"decision": "approved"})
    assert status == 200
    assert job["id"] == "beach" and job["review"]["decision"] == "approved"
    assert job["review"]["take"] == 1 and job["review"]["at"].endswith("Z")
    # Folded into the lockfile at once (what `git diff` shows), the journal left empty.
    assert lock_jobs(project)["beach"]["review"] == job["review"]
    assert not journal_path_for(lock_path_for(project.path)).read_bytes()

    status, job = await post(server, "beach", {"decision": "rejected"})
    assert status == 200 and lock_jobs(project)["beach"]["review"]["decision"] == "rejected"
    status, job = await post(server, "beach", {"decision": None})
    assert status == 200 and lock_jobs(project)["beach"]["review"]["decision"] is None

    # The token in the query works as well as the header (the page's own links use it).
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server}/api/jobs/dog/review?token={TOKEN}",
                                json={"decision": "approved"}) as r:
            assert r.status == 200
    assert lock_jobs(project)["dog"]["review"]["decision"] == "approved"


async def test_choosing_a_take_makes_it_the_selected_file(server: str, project: Manifest) -> None:
    out = project.output_dir
    assert (out / "cat.mp4").read_bytes() == clip("cat", 2)
    status, job = await post(server, "cat", {"decision": "approved", "take": 1})
    assert status == 200
    assert (out / "cat.mp4").read_bytes() == clip("cat", 1)
    assert (out / "cat.take2.mp4").read_bytes() == clip("cat", 2)
    assert not (out / "cat.take1.mp4").exists()
    recorded = lock_jobs(project)["cat"]
    assert recorded["review"]["take"] == 1 and recorded["review"]["decision"] == "approved"
    assert recorded["task_id"] == "video_cat_1" and recorded["output"] == "out/cat.mp4"
    assert recorded["sha256"] == hashlib.sha256(clip("cat", 1)).hexdigest()
    assert {t["take"]: t["output"] for t in recorded["takes"]} == {
        1: "out/cat.mp4", 2: "out/cat.take2.mp4"}
    assert job["sha256"] == recorded["sha256"]

    # And back: take 2 is <id>.mp4 again, take 1 keeps its own name.
    status, _ = await post(server, "cat", {"decision": None, "take": 2})
    assert status == 200
    assert (out / "cat.mp4").read_bytes() == clip("cat", 2)
    assert (out / "cat.take1.mp4").read_bytes() == clip("cat", 1)
    assert lock_jobs(project)["cat"]["task_id"] == "video_cat_2"


async def test_a_file_at_the_take_name_stops_the_swap_and_loses_no_video(
        server: str, project: Manifest) -> None:
    out = project.output_dir
    (out / "cat.take2.mp4").write_bytes(b"someone's file")  # where take 2 would move
    status, job = await post(server, "cat", {"decision": "approved", "take": 1})
    assert status >= 400 and "cat.take2.mp4 exists" in json.dumps(job)
    assert (out / "cat.mp4").read_bytes() == clip("cat", 2)
    assert (out / "cat.take2.mp4").read_bytes() == b"someone's file"
    assert lock_jobs(project)["cat"]["task_id"] == "video_cat_2"


@pytest.mark.parametrize(
    ("body", "raw", "status", "message"),
    [
        (None, b"not json", 400, "not JSON"),
        (["approved"], None, 400, "JSON object"),
        ({}, None, 400, "missing 'decision'"),
        ({"decision": "maybe"}, None, 400, "'maybe' is not one of"),
        ({"decision": "approved", "take": "1"}, None, 400, "take: expected a take number"),
        ({"decision": "approved", "take": True}, None, 400, "take: expected a take number"),
        ({"decision": "approved", "take": 7}, None, 400, "has no take 7 (takes: 1, 2)"),
        ({"decision": "approved", "note": "x"}, None, 400, "unknown field 'note'"),
    ],
)
async def test_bad_requests_get_a_clear_json_error(
    server: str, project: Manifest, body: Any, raw: bytes | None, status: int, message: str
) -> None:
    before = lock_path_for(project.path).read_bytes()
    got, answer = await post(server, "cat", body, raw=raw)
    assert got == status and message in answer["error"]
    assert lock_path_for(project.path).read_bytes() == before


async def test_unknown_jobs_are_404(server: str) -> None:
    for job in ("no-such-job", "never-run"):
        status, answer = await post(server, job, {"decision": "approved"})
        assert status == 404 and f"no job '{job}'" in answer["error"]
    status, body = await get(server, "/api/jobs/nope", {"X-Octobatch-Token": TOKEN})
    assert status == 404 and b"no job 'nope'" in body


async def test_a_running_batch_keeps_the_lock_and_the_decision_waits(
    server: str, project: Manifest
) -> None:
    store = StateStore.open(project.path)  # what `octobatch run` holds while it runs
    try:
        status, answer = await post(server, "beach", {"decision": "approved"})
    finally:
        store.close()
    assert status == 409 and "another octobatch run" in answer["error"]
    assert "review" not in lock_jobs(project)["beach"]
    status, _ = await post(server, "beach", {"decision": "approved"})
    assert status == 200


async def test_only_the_files_the_gallery_links_are_served(server: str, project: Manifest) -> None:
    auth = {"X-Octobatch-Token": TOKEN}
    status, body = await get(server, "/file?path=out%2Fcat.take1.mp4", auth)
    assert status == 200 and body == clip("cat", 1)
    for path in ("shots.yaml", "shots.lock.json", "..%2F..%2Fetc%2Fpasswd", "out", ""):
        assert (await get(server, f"/file?path={path}", auth))[0] == 404
    status, page = await get(server, "/", auth)
    assert status == 200 and b'name="octobatch-token"' in page
    assert b"/file?path=out%2Fcat.mp4&amp;token=" in page


async def test_a_lockfile_cannot_make_the_page_serve_other_files(
        server: str, project: Manifest) -> None:
    # A committed lockfile is the repository's word: an output named outside the job's own
    # video names is never served, even to the token holder.
    secret = project.lock_path.parent / "secret.txt"
    secret.write_text("a private file\n")
    data = json.loads(project.lock_path.read_text())
    data["jobs"]["beach"]["output"] = "secret.txt"
    data["jobs"]["beach"]["takes"][0]["output"] = "secret.txt"
    project.lock_path.write_text(json.dumps(data))
    auth = {"X-Octobatch-Token": TOKEN}
    assert (await get(server, "/file?path=secret.txt", auth))[0] == 404
    assert (await get(server, "/file?path=out%2Fcat.take1.mp4", auth))[0] == 200


def test_review_command_prints_the_url_first_and_stops_on_ctrl_c(project: Manifest) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "octobatch", "review", str(project.path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=project.path.parent,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        with_token = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                                    capture_output=True, text=True, timeout=30, check=False)
        without = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                  url.split("?")[0]],
                                 capture_output=True, text=True, timeout=30, check=False)
        assert (with_token.stdout, without.stdout) == ("200", "403")
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


def test_review_command_refuses_an_invalid_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\njobs:\n  - model: omni-slow\n    prompt: x\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "octobatch", "review", str(bad)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and f"{bad}:3:" in result.stderr and not result.stdout


def _plan_actions(project: Manifest, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    main(["plan", str(project.path), "--replace-rejected", "--json"])
    return {s["id"]: s["action"] for s in json.loads(capsys.readouterr().out)["steps"]}


def test_replace_rejected_re_rolls_a_rejected_take_once(
    project: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    record_review(project.path, "dog", ReviewRequest(decision="rejected", take=None))
    assert _plan_actions(project, capsys)["dog"] == "regenerate"
    # The re-roll completes as take 2, now selected: the rejection was about take 1, so the
    # new take is undecided and the next `--replace-rejected` does not pay for it again.
    store = StateStore.open(project.path)
    job = next(j for j in project.jobs if j.id == "dog")
    (project.output_dir / "dog.mp4").rename(project.output_dir / "dog.take1.mp4")
    (project.output_dir / "dog.mp4").write_bytes(clip("dog", 2))
    store.pending("dog", spec_hash=job.spec_hash, model=job.model, spec=dict(job.canonical),
                  idempotency_key="key-dog-2")
    store.submitting("dog")
    store.task_recorded("dog", task_id="video_dog_2", status=Status.QUEUED, attempts=1,
                        submitted_at=NOW)
    store.completed("dog", video_url="https://cdn.invalid/dog/2", output="out/dog.mp4",
                    sha256=hashlib.sha256(clip("dog", 2)).hexdigest(),
                    bytes=len(clip("dog", 2)), completed_at=NOW, moved={1: "out/dog.take1.mp4"})
    store.close()
    assert lock_jobs(project)["dog"]["review"]["decision"] == "rejected"  # the record stays
    assert _plan_actions(project, capsys)["dog"] == "skip"
