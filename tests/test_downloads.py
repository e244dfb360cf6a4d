"""Downloads on a network and a disk that misbehave: resumes, restarts, checks, local faults.

Small files (a few hundred KB) and tiny limits keep every test to a fraction of a second.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from engine_helpers import prompts_jobs, run_engine, submits, write_manifest
from loopback import serving

from octobatch.download import (
    DownloadLimits,
    LocalWriteError,
    NotAVideo,
    check_output_dir,
    local_error,
    place,
)
from octobatch.errors import ManifestError, OctobatchError
from octobatch.manifest import load_manifest
from octobatch.providers import Provider, Providers, TaskState, connect
from octobatch.simulator import DEMO_KEY, Faults, Simulator
from octobatch.transport import Transport, TruncatedDownload

SIZE = 300_000
QUICK = DownloadLimits(stall_seconds=0.2, deadline_seconds=5)
OMNI = {"model": "omni-fast", "prompt": "waves", "seconds": "8", "aspect_ratio": "16:9"}


async def finished(client: Provider) -> tuple[str, str]:
    from octobatch.jobs import ApiRequest

    task_id = (await client.submit(ApiRequest(transport="json", json=OMNI), "k")).task_id
    while True:
        video = await client.poll(task_id)
        if video.state is TaskState.COMPLETED and video.video_url:
            return task_id, video.video_url


def ranged_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.kind == "download" and r.status == 206)


# -- resume, restart ---------------------------------------------------------------------------

async def test_a_cut_transfer_resumes_from_the_bytes_on_disk(make_simulator: Any,
                                                             tmp_path: Path) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_truncate_first=1))
    dest = tmp_path / ".v.mp4.part"
    async with connect(sim.base_url, DEMO_KEY) as client:
        task_id, url = await finished(client)
        with pytest.raises(TruncatedDownload) as cut:
            await client.download(url, dest)
        kept = dest.stat().st_size
        assert cut.value.progressed == kept > 0 and "bytes kept for a resume" in str(cut.value)
        got = await client.download(url, dest)
    whole = sim.expected_video(task_id)
    assert dest.read_bytes() == whole
    assert got.bytes == SIZE and got.sha256 == hashlib.sha256(whole).hexdigest()
    # Bytes on the wire: the first half once, then only the rest.
    assert got.received == SIZE == sim.bytes_sent_per_task[task_id]
    assert ranged_requests(sim) == 1


async def test_a_server_that_ignores_range_restarts_the_file_cleanly(make_simulator: Any,
                                                                     tmp_path: Path) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_truncate_first=1,
                                                               ignore_range=True))
    dest = tmp_path / ".v.mp4.part"
    async with connect(sim.base_url, DEMO_KEY) as client:
        task_id, url = await finished(client)
        with pytest.raises(TruncatedDownload):
            await client.download(url, dest)
        got = await client.download(url, dest)
    whole = sim.expected_video(task_id)
    assert dest.read_bytes() == whole and got.sha256 == hashlib.sha256(whole).hexdigest()
    assert got.received == SIZE + SIZE // 2 and ranged_requests(sim) == 0


async def test_an_object_changed_between_attempts_restarts_with_the_new_one(
        make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_truncate_first=1,
                                                               object_changes=1))
    dest = tmp_path / ".v.mp4.part"
    async with connect(sim.base_url, DEMO_KEY) as client:
        task_id, url = await finished(client)
        with pytest.raises(TruncatedDownload):
            await client.download(url, dest)
        old_half = dest.read_bytes()
        got = await client.download(url, dest)
    new = sim.expected_video(task_id)
    assert not new.startswith(old_half)  # the kept half was of the old version: not mixed in
    assert dest.read_bytes() == new and got.sha256 == hashlib.sha256(new).hexdigest()
    assert ranged_requests(sim) == 0  # If-Range named the old ETag: the whole new file came


async def test_a_stalled_body_and_an_overlong_length_are_cut_and_resumed(
        make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_stall_first=1,
                                                               download_overlong_first=1))
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)), download=QUICK)
    assert outcome.result.completed == 1
    (entry,) = outcome.state.jobs.values()
    assert entry.sha256 == hashlib.sha256(sim.expected_video(entry.task_id or "")).hexdigest()
    # Stalled at half: resumed from there; overlong: all bytes came, the 416 to the resume
    # says that was the whole file.
    kinds = [r.status for r in sim.requests if r.kind == "download"]
    assert kinds == [200, 206, 416], kinds


async def test_a_slow_body_that_never_goes_silent_is_not_cut(make_simulator: Any,
                                                             tmp_path: Path) -> None:
    # A tenth of a second's worth at a time, for about 1 s: five times the stall limit in
    # all, but never that long without a byte.
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_bytes_per_second=SIZE))
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)), download=QUICK)
    assert outcome.result.completed == 1
    assert [r.status for r in sim.requests if r.kind == "download"] == [200]


async def test_a_url_expiring_mid_download_is_refreshed_and_the_transfer_resumed(
        make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(
        url_ttl=0.25, url_ttl_cuts_downloads=True, download_bytes_per_second=SIZE * 2))
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)), download=QUICK)
    assert outcome.result.completed == 1
    (entry,) = outcome.state.jobs.values()
    task_id = entry.task_id or ""
    assert (tmp_path / "out" / "clip-0.mp4").read_bytes() == sim.expected_video(task_id)
    assert ranged_requests(sim) >= 1
    assert sim.bytes_sent_per_task[task_id] < SIZE * 1.2  # resumed, not restarted


async def test_cut_chunks_cost_little_more_than_the_file(make_simulator: Any,
                                                         tmp_path: Path) -> None:
    size = 2 * 1024 * 1024
    sim = await make_simulator(video_bytes=size, faults=Faults(cut_chunk_rate=0.05))
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(3)), download=QUICK)
    assert outcome.result.completed == 3
    sent = sum(sim.bytes_sent_per_task.values())
    assert sent < 3 * size * 1.1  # from zero each time, a 32-chunk file would cost ~5x
    assert len(submits(sim)) == 3


# -- what counts as a video ----------------------------------------------------------------------

async def test_an_html_page_with_200_is_retried_never_saved(make_simulator: Any,
                                                            tmp_path: Path) -> None:
    sim = await make_simulator(faults=Faults(download_html_first=2))
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)), download=QUICK)
    assert outcome.result.completed == 1
    reasons = [e.reason for e in outcome.named("retried")]
    assert len(reasons) == 2 and "not an MP4 (text/html" in reasons[0]


async def test_a_provider_that_only_serves_html_leaves_the_job_unfinished_with_its_task(
        make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(faults=Faults(download_html=1.0))
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)), download=QUICK)
    assert outcome.result.unfinished == 1
    (unfinished,) = outcome.named("unfinished")
    assert "not an MP4" in unfinished.reason and unfinished.task_id
    assert outcome.state.jobs["clip-0"].task_id == unfinished.task_id
    assert not (tmp_path / "out" / "clip-0.mp4").exists()
    assert list((tmp_path / "out").glob(".*.part")) == []


async def test_a_gzipping_cdn_is_asked_for_identity(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_gzip=True))
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)), download=QUICK)
    assert outcome.result.completed == 1 and outcome.named("retried") == []


async def test_a_video_over_the_cap_is_refused_at_once(make_simulator: Any,
                                                       tmp_path: Path) -> None:
    sim = await make_simulator(video_bytes=SIZE)
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)),
                               download=DownloadLimits(max_bytes=100_000))
    (unfinished,) = outcome.named("unfinished")
    assert f"the video is {SIZE} bytes, over the 100000-byte cap" in unfinished.reason
    assert "OCTOBATCH_MAX_VIDEO_BYTES" in unfinished.reason
    assert sim.downloads_per_task[unfinished.task_id] == 1  # permanent: not retried


async def test_a_trickle_is_bounded_by_one_deadline_over_every_attempt(
        make_simulator: Any, tmp_path: Path) -> None:
    # 1 s of transfer against a 0.4 s deadline: cut at the deadline, and not resumed past it.
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_bytes_per_second=SIZE))
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)),
                               download=DownloadLimits(stall_seconds=1, deadline_seconds=0.4))
    (unfinished,) = outcome.named("unfinished")
    assert "did not arrive within 0.4 s" in unfinished.reason and unfinished.task_id
    assert sim.bytes_sent_per_task[unfinished.task_id] < SIZE * 0.6


async def test_a_body_that_never_goes_silent_is_cut_at_the_deadline(make_simulator: Any,
                                                                      tmp_path: Path) -> None:
    # About 2 s of trickle, never 0.3 s without a byte, against a deadline of 0.8 s.
    sim = await make_simulator(video_bytes=SIZE,
                               faults=Faults(download_bytes_per_second=SIZE // 2))
    limits = DownloadLimits(stall_seconds=0.3, deadline_seconds=0.8)
    async with Transport(sim.base_url, DEMO_KEY, download_limits=limits) as transport:
        client = Providers(transport).get("octopusx")
        _, url = await finished(client)
        started = time.monotonic()
        with pytest.raises(TruncatedDownload, match="download ran out of its 0.8 s"):
            await asyncio.wait_for(client.download(url, tmp_path / ".v.mp4.part"), 10)
    assert time.monotonic() - started >= 0.8
    assert 0 < (tmp_path / ".v.mp4.part").stat().st_size < SIZE  # kept for a resume


async def silent(request: web.Request) -> web.Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def error_without_its_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=500, headers={"Content-Length": "100"})
    await response.prepare(request)  # the headers, then not a byte of the body
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("handler", [silent, error_without_its_body],
                         ids=["no-headers", "error-without-body"])
async def test_an_answer_that_stops_before_the_video_is_a_stall(handler: Any,
                                                                tmp_path: Path) -> None:
    async with serving(web.get("/v.mp4", handler)) as base:
        url = f"{base}/v.mp4"
        limits = DownloadLimits(stall_seconds=0.3, deadline_seconds=5)
        async with Transport(base, DEMO_KEY, download_limits=limits) as transport:
            client = Providers(transport).get("octopusx")
            started = time.monotonic()
            with pytest.raises(TruncatedDownload, match="download stalled: no data for 0.3 s"):
                await asyncio.wait_for(client.download(url, tmp_path / "v.part"), 10)
            assert time.monotonic() - started >= 0.3


def test_max_video_bytes_from_the_environment() -> None:
    assert DownloadLimits.from_env({"OCTOBATCH_MAX_VIDEO_BYTES": "1000"}).max_bytes == 1000
    assert DownloadLimits.from_env({}).max_bytes == 2 * 1024 ** 3
    with pytest.raises(Exception, match="not a positive number of bytes"):
        DownloadLimits.from_env({"OCTOBATCH_MAX_VIDEO_BYTES": "lots"})


def test_not_a_video_is_transient() -> None:
    assert issubclass(NotAVideo, Exception) and not issubclass(NotAVideo, TruncatedDownload)


# -- the local disk ---------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "words"), [
    (errno.ENOSPC, "no space left on the device; free some space"),
    (errno.EACCES, "permission denied; make the folder writable or choose another --output-dir"),
    (errno.EROFS, "read-only; choose another --output-dir"),
    (errno.ENAMETOOLONG, "too long for this file system; use a shorter job id"),
])
def test_local_errors_name_the_path_and_the_fix(code: int, words: str) -> None:
    error = local_error(OSError(code, "x"), Path("out/a.mp4"))
    assert isinstance(error, LocalWriteError)
    assert str(error).startswith("cannot write out/a.mp4: ") and words in str(error)
    assert "the task is kept" in str(error)


async def test_a_symlink_at_the_part_path_is_refused(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".clip-0.mp4.part").symlink_to(victim)
    outcome = await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)))
    (unfinished,) = outcome.named("unfinished")
    assert "symbolic link" in unfinished.reason and unfinished.task_id
    assert victim.read_text() == "precious"


async def test_a_symlink_planted_mid_run_at_a_resume_note_is_refused(make_simulator: Any,
                                                                    tmp_path: Path) -> None:
    # The folder is open (a first download) when the link appears; the note a cut writes
    # refuses it. (One planted before the run: test_symlinks_outputs.py.)
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_truncate_first=2))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    async with connect(sim.base_url, DEMO_KEY) as client:
        _, first_url = await finished(client)
        second_id, second_url = await finished(client)
        with pytest.raises(TruncatedDownload):
            await client.download(first_url, out / ".v.mp4.part")
        assert json.loads((out / ".v.mp4.part.json").read_text())["durable"] > 0
        note = out / ".w.mp4.part.json"
        note.symlink_to(victim)
        with pytest.raises(LocalWriteError) as refused:
            await client.download(second_url, out / ".w.mp4.part")
        assert str(refused.value).startswith(f"cannot write {note}: {note} is a symbolic link")
        note.unlink()
        await client.download(second_url, out / ".w.mp4.part")
    assert (out / ".w.mp4.part").read_bytes() == sim.expected_video(second_id)
    assert victim.read_text() == "precious"


async def test_an_output_folder_swapped_for_a_link_mid_run_is_not_followed(
        make_simulator: Any, tmp_path: Path) -> None:
    # The folder is opened once per run, by the first download into it; what is swapped in
    # at its path afterwards is never written through.
    sim = await make_simulator(video_bytes=SIZE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    async with connect(sim.base_url, DEMO_KEY) as client:
        _, first_url = await finished(client)
        second_id, second_url = await finished(client)
        await client.download(first_url, out / ".a.mp4.part")
        out.rename(tmp_path / "moved")
        out.symlink_to(elsewhere, target_is_directory=True)
        got = await client.download(second_url, out / ".b.mp4.part")
        place(out / ".b.mp4.part", out / "b.mp4", got.folder)
    assert list(elsewhere.iterdir()) == []
    assert (tmp_path / "moved" / "b.mp4").read_bytes() == sim.expected_video(second_id)


async def test_an_output_folder_that_cannot_exist_stops_the_run_before_paying(
        make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator()
    (tmp_path / "out").write_text("a file where the folder should be")
    with pytest.raises(Exception, match="cannot write to the output folder .*nothing was "
                                        "submitted"):
        await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)))
    assert submits(sim) == []


async def test_a_symlinked_output_folder_in_the_project_stops_the_run_before_paying(
        make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator()
    (tmp_path / ".git").mkdir()  # the project: a git work tree
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OctobatchError, match="is a symbolic link.*nothing was submitted"):
        check_output_dir(tmp_path / "out")
    # A run refuses it too (the manifest loader already, as outside the project).
    with pytest.raises(OctobatchError, match="outside the manifest's project|symbolic link"):
        await run_engine(sim, write_manifest(tmp_path, prompts_jobs(1)))
    assert submits(sim) == [] and list(elsewhere.iterdir()) == []


async def test_a_job_id_too_long_for_a_file_name_is_not_paid_for(
        make_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # validate refuses ids that cannot fit 255 bytes with `.<id>.mp4.part`; a file system
    # with shorter names (eCryptfs takes 143 bytes) is caught by the engine, before paying.
    with pytest.raises(ManifestError, match="at most 245 fit in a file name"):
        load_manifest(write_manifest(tmp_path, [{"id": "x" * 250, "prompt": "long"}]))
    monkeypatch.setattr(os, "pathconf", lambda path, name: 143)
    sim = await make_simulator()
    jobs = [{"id": "x" * 150, "prompt": "long"}, {"id": "short", "prompt": "short"}]
    outcome = await run_engine(sim, write_manifest(tmp_path, jobs))
    (unfinished,) = outcome.named("unfinished")
    assert "too long to be a file name" in unfinished.reason
    assert outcome.result.completed == 1 and len(submits(sim)) == 1


@pytest.mark.parametrize(("video_bytes", "limit"), [(SIZE, 64 * 1024),
                                                    (1_600_000, 1024 * 1024)])
def test_a_write_error_mid_download_leaves_those_jobs_unfinished_and_the_rerun_pays_nothing(
        simulator_thread: Any, tmp_path: Path, video_bytes: int, limit: int) -> None:
    # A real kernel write error: a file size limit (RLIMIT_FSIZE) below the video's size makes
    # each video write fail with EFBIG, while the small lockfile and journal still fit. With
    # the larger video the failing piece is one written while the next one arrives.
    sim = simulator_thread(video_bytes=video_bytes)
    manifest = write_manifest(tmp_path, prompts_jobs(2))
    command = [sys.executable, "-m", "octobatch", "run", str(manifest), "--base-url",
               sim.base_url, "--json", "--poll-interval", "0.01"]
    env = {"OCTOPUSX_API_KEY": DEMO_KEY, "PATH": "/usr/bin:/bin"}

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    first = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env,
                           preexec_fn=limit_file_size, check=False)
    assert first.returncode == 1 and "Traceback" not in first.stderr
    events = [json.loads(line) for line in first.stdout.splitlines()]
    unfinished = [e for e in events if e["event"] == "unfinished"]
    assert len(unfinished) == 2
    assert all("cannot write " in e["reason"] and ".mp4.part" in e["reason"]
               and e["task_id"] for e in unfinished)
    second = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env,
                            check=False)
    assert second.returncode == 0, second.stderr
    assert sum(sim.tasks_created_per_prompt().values()) == 2  # nothing paid twice


# -- across runs -------------------------------------------------------------------------------

async def test_a_later_run_resumes_the_bytes_an_earlier_one_kept(make_simulator: Any,
                                                                 tmp_path: Path) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_truncate_first=1))
    dest = tmp_path / ".v.mp4.part"
    async with connect(sim.base_url, DEMO_KEY) as client:  # the first run
        task_id, url = await finished(client)
        with pytest.raises(TruncatedDownload):
            await client.download(url, dest)
    note = json.loads((tmp_path / ".v.mp4.part.json").read_text())
    assert note["durable"] == dest.stat().st_size > 0 and note["etag"].startswith('"')
    async with connect(sim.base_url, DEMO_KEY) as client:  # a new run: a fresh transport
        got = await client.download(url, dest)
    whole = sim.expected_video(task_id)
    assert dest.read_bytes() == whole and got.sha256 == hashlib.sha256(whole).hexdigest()
    assert sim.bytes_sent_per_task[task_id] == SIZE and ranged_requests(sim) == 1
    assert not (tmp_path / ".v.mp4.part.json").exists()


async def test_kept_bytes_past_the_noted_size_are_not_trusted(make_simulator: Any,
                                                              tmp_path: Path) -> None:
    sim = await make_simulator(video_bytes=SIZE, faults=Faults(download_truncate_first=1))
    dest = tmp_path / ".v.mp4.part"
    async with connect(sim.base_url, DEMO_KEY) as client:
        task_id, url = await finished(client)
        with pytest.raises(TruncatedDownload):
            await client.download(url, dest)
    kept = dest.stat().st_size
    with open(dest, "ab") as f:  # what a power cut can leave: length without the data
        f.write(bytes(1000))
    async with connect(sim.base_url, DEMO_KEY) as client:
        await client.download(url, dest)
    assert dest.read_bytes() == sim.expected_video(task_id)
    assert sim.bytes_sent_per_task[task_id] == SIZE and kept < SIZE


def test_ctrl_c_mid_download_keeps_the_bytes_and_the_rerun_fetches_only_the_rest(
        simulator_thread: Any, tmp_path: Path) -> None:
    sim = simulator_thread(video_bytes=SIZE, faults=Faults(download_bytes_per_second=SIZE))
    manifest = write_manifest(tmp_path, prompts_jobs(1))
    command = [sys.executable, "-m", "octobatch", "run", str(manifest), "--base-url",
               sim.base_url, "--quiet", "--poll-interval", "0.01"]
    env = {"OCTOPUSX_API_KEY": DEMO_KEY, "PATH": "/usr/bin:/bin"}
    part = tmp_path / "out" / ".clip-0.mp4.part"
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        # A quarter of the 1 s transfer is across (still in the client's write buffer).
        while sum(sim.bytes_sent_per_task.values()) < SIZE // 4:
            assert time.monotonic() < deadline and first.poll() is None, "no download began"
            time.sleep(0.02)
        first.send_signal(signal.SIGINT)
        assert first.wait(30) == 130
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    kept = part.stat().st_size
    assert 0 < kept < SIZE
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert second.returncode == 0, second.stderr
    (task_id,) = sim.tasks
    assert (tmp_path / "out" / "clip-0.mp4").read_bytes() == sim.expected_video(task_id)
    assert ranged_requests(sim) == 1
    assert sim.bytes_sent_per_task[task_id] < SIZE + SIZE // 4  # not the whole file again
    assert not part.exists() and not (tmp_path / "out" / ".clip-0.mp4.part.json").exists()
