"""Seedance 2.0: its own route family (POST /v1/video/generations with a `content` array,
polled at /v1/video/generations/{id}), served by a second dialect behind the provider seam."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine_helpers import run_engine
from test_simulator_curl import curl

from octobatch.errors import ManifestError
from octobatch.manifest import load_manifest
from octobatch.models import build_request, load_models
from octobatch.providers import PROVIDERS, TaskState
from octobatch.providers.seedance2 import Seedance2, generation_body
from octobatch.simulator import DEMO_KEY, Simulator
from octobatch.transport import ServerError, Transport

MODEL = "doubao-seedance-2-0-260128"
FAST_MODEL = "doubao-seedance-2-0-fast-260128"
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/apple.jpg"},
         "role": "reference_image"}


def write(tmp_path: Path, *jobs: dict[str, Any]) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "output_dir": "out", "jobs": list(jobs)},
                                   sort_keys=False))
    return path


def test_the_model_files_name_the_dialect() -> None:
    models = load_models()
    assert {models[MODEL].provider, models[FAST_MODEL].provider} == {"seedance-2"}
    assert PROVIDERS["seedance-2"] is Seedance2
    assert models[MODEL].source == "https://docs.octopusx.ai/en/videos/seedance-2/generation"


def test_good_and_bad_jobs(tmp_path: Path) -> None:
    good = {"id": "tea", "model": MODEL, "prompt": "Fruit tea ad", "content": [IMAGE],
            "metadata": {"duration": 8, "resolution": "720p", "ratio": "16:9"}}
    [job] = load_manifest(write(tmp_path, good)).jobs
    assert job.fields["metadata"] == {"duration": 8, "resolution": "720p", "ratio": "16:9"}
    bad = {"id": "bad", "model": FAST_MODEL, "prompt": "x", "content": [
        {"type": "text", "text": "hi"},
        {"type": "video_url", "video_url": {"url": "ftp://x"}, "role": "first_frame"},
        {"type": "audio_url", "audio_url": {"url": "https://e.com/a.mp3"},
         "role": "reference_audio"}],
        "metadata": {"duration": 3, "ratio": "21:9"}}
    path = write(tmp_path, bad)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert [str(d).removeprefix(f"{path}:") for d in info.value.diagnostics] == [
        "8:11: job 'bad': content[0].type: must be image_url, video_url or audio_url (the text "
        "is the job's prompt), got 'text'",
        "9:5: job 'bad': content[0].text: unknown field (known fields: type, image_url, "
        "video_url, audio_url, role)",
        "12:12: job 'bad': content[1].video_url.url: must be a public http(s) URL or "
        "asset://<asset id>, got 'ftp://x'",
        "13:11: job 'bad': content[1].role: a video_url item's role is one of reference_video, "
        "got 'first_frame'",
        "19:5: job 'bad': metadata.generate_audio: a reference_audio item needs "
        "metadata.generate_audio: true",
        "19:15: job 'bad': metadata.duration: must be a whole number of seconds from 4 to 15, "
        "or -1 (the model decides)",
        "20:12: job 'bad': metadata.ratio: '21:9' is not one of '16:9', '9:16', '1:1', '4:3', "
        "'adaptive'"]


def test_the_prompt_becomes_the_first_content_item(tmp_path: Path) -> None:
    [job] = load_manifest(write(tmp_path, {
        "id": "tea", "model": MODEL, "prompt": "Fruit tea ad", "content": [IMAGE],
        "metadata": {"duration": -1}})).jobs
    assert generation_body(build_request(job)) == {
        "model": MODEL,
        "content": [{"type": "text", "text": "Fruit tea ad"}, IMAGE],
        "metadata": {"duration": -1}}


@pytest.fixture
def sim(simulator_thread: Any) -> Simulator:
    started: Simulator = simulator_thread(latency=0)
    return started


def post(sim: Simulator, body: str) -> tuple[int, Any]:
    status, text = curl("-X", "POST", f"{sim.base_url}/v1/video/generations",
                        "-H", f"Authorization: Bearer {DEMO_KEY}",
                        "-H", "Content-Type: application/json", "-d", body)
    return status, json.loads(text)


# docs.octopusx.ai/en/videos/seedance-2/generation and /query: the pages' examples
def test_page_examples_create_query_and_download(sim: Simulator, tmp_path: Path) -> None:
    status, created = post(sim, """{
  "model": "doubao-seedance-2-0-260128",
  "content": [
    {
      "type": "text",
      "text": "First-person view fruit tea ad: 0-2s picking apples by hand; 2-4s cut to pouring into a shaker cup and shaking; 4-6s close-up of pouring into a clear cup; 6-8s raise the cup toward the camera"
    },
    {
      "type": "image_url",
      "image_url": { "url": "https://example.com/apple.jpg" },
      "role": "reference_image"
    }
  ]
}""")
    assert status == 200 and list(created) == ["task_id"]
    status, text = curl(f"{sim.base_url}/v1/video/generations/{created['task_id']}",
                        "-H", f"Authorization: Bearer {DEMO_KEY}",
                        "-H", "Accept: application/json")
    answer = json.loads(text)
    assert status == 200 and answer["code"] == "success"
    data = answer["data"]
    assert (data["task_id"], data["status"], data["progress"]) == (
        created["task_id"], "SUCCESS", "100%")
    assert data["data"]["status"] == "succeeded"
    out = tmp_path / "v.mp4"
    assert curl("-o", str(out), data["data"]["content"]["video_url"])[0] == 200
    assert out.read_bytes() == sim.expected_video(created["task_id"])


@pytest.mark.parametrize(("body", "words"), [
    ('{"model": "doubao-seedance-2-0-260128", "content": []}', "content must be a non-empty"),
    ('{"model": "doubao-seedance-2-0-260128", "content": [{"type": "text", "text": "a"}, '
     '{"type": "draft_task", "draft_task": {"id": "d1"}}]}', "draft_task must be the only"),
    ('{"model": "doubao-seedance-2-0-260128", "content": [{"type": "audio_url", '
     '"audio_url": {"url": "https://e.com/a.mp3"}, "role": "reference_audio"}]}',
     "reference_audio requires metadata.generate_audio=true"),
    ('{"model": "doubao-seedance-2-0-260128", "content": [{"type": "text", "text": "a"}], '
     '"metadata": {"duration": 16}}', "metadata.duration must be in [4, 15] or -1"),
])
def test_the_simulator_refuses_what_the_page_rules_out(sim: Simulator, body: str, words: str
                                                       ) -> None:
    status, answer = post(sim, body)
    assert status == 400 and words in answer["message"], answer
    assert sim.tasks == {}


def test_other_routes_do_not_serve_seedance_2(sim: Simulator) -> None:
    status, text = curl("-X", "POST", f"{sim.base_url}/v1/videos",
                        "-H", f"Authorization: Bearer {DEMO_KEY}",
                        "-H", "Content-Type: application/json",
                        "-d", '{"model": "doubao-seedance-2-0-260128", "prompt": "p"}')
    assert status == 503 and json.loads(text)["error"]["code"] == "model_not_found"
    status, answer = post(sim, '{"model": "sora-2", "content": [{"type": "text", "text": "a"}]}')
    assert status == 503


@pytest.mark.parametrize(("answer", "state", "url"), [
    ({"task_id": "cgt-1"}, TaskState.QUEUED, None),
    ({"code": "success", "data": {"task_id": "cgt-1", "status": "IN_PROGRESS",
                                  "progress": "50%"}}, TaskState.RUNNING, None),
    ({"code": "success", "data": {"task_id": "cgt-1", "status": "SUCCESS", "data": {
        "content": {"video_url": "https://cdn.example.com/v.mp4"}}}}, TaskState.COMPLETED,
     "https://cdn.example.com/v.mp4"),
    ({"code": "success", "data": {"task_id": "cgt-1", "data": {"status": "succeeded"}}},
     TaskState.COMPLETED, "http://sim/v1/videos/cgt-1/content"),
])
async def test_answers_are_read_in_the_routes_own_words(answer: dict[str, Any],
                                                        state: TaskState, url: str | None
                                                        ) -> None:
    async with Transport("http://sim", "k") as transport:
        video = Seedance2(transport).read_video(answer, fallback_id=None)
    assert (video.task_id, video.state, video.video_url) == ("cgt-1", state, url)


async def test_a_failure_carries_its_reason_and_a_bad_code_is_an_error() -> None:
    async with Transport("http://sim", "k") as transport:
        dialect = Seedance2(transport)
        video = dialect.read_video({"code": "success", "data": {
            "task_id": "t", "status": "FAILURE", "fail_reason": "content blocked"}}, "t")
        assert video.state is TaskState.FAILED
        assert video.error == {"code": "failure", "message": "content blocked"}
        with pytest.raises(ServerError, match="quota"):
            dialect.read_video({"code": "fail", "message": "quota"}, "t")


async def test_jobs_run_end_to_end_through_the_unchanged_engine(tmp_path: Path,
                                                                simulator: Simulator) -> None:
    path = write(tmp_path,
                 {"id": "tea", "model": MODEL, "prompt": "Fruit tea ad", "content": [IMAGE],
                  "metadata": {"duration": 5, "ratio": "9:16"}},
                 {"id": "quick", "model": FAST_MODEL, "prompt": "A paper boat"},
                 {"id": "omni", "model": "omni-fast", "prompt": "Waves", "seconds": 8,
                  "aspect_ratio": "16:9"})
    outcome = await run_engine(simulator, path)
    assert (outcome.result.completed, outcome.result.failed) == (3, 0)
    by_model = {t.model: t for t in simulator.tasks.values()}
    assert by_model[MODEL].params["content"] == ["reference_image"]
    assert by_model[MODEL].prompt == "Fruit tea ad" and by_model[MODEL].params["ratio"] == "9:16"
    assert by_model[FAST_MODEL].params == {"content": []}
    for job_id in ("tea", "quick", "omni"):
        entry = outcome.state.jobs[job_id]
        assert entry.status.value == "completed"
        assert (tmp_path / "out" / f"{job_id}.mp4").stat().st_size == entry.bytes


def test_plan_counts_the_length_where_each_model_keeps_it(tmp_path: Path) -> None:
    from octobatch.plan import make_plan
    from octobatch.state import LockState

    path = write(tmp_path,
                 {"id": "tea", "model": MODEL, "prompt": "Fruit tea ad",
                  "metadata": {"duration": 8}},
                 {"id": "auto", "model": MODEL, "prompt": "The model picks",
                  "metadata": {"duration": -1}},  # -1: the model decides, length unknown
                 {"id": "vidu", "model": "viduq2-turbo", "prompt": "A kite", "duration": 5})
    jobs = {job.id: job for job in load_manifest(path).jobs}
    assert (jobs["tea"].seconds, jobs["auto"].seconds, jobs["vidu"].seconds) == (8, None, 5)
    plan = make_plan(list(jobs.values()), LockState(manifest="s.yaml"), {})
    assert plan.seconds_by_model() == {MODEL: 8, "viduq2-turbo": 5}
