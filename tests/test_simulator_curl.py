"""Clients nobody here wrote: the provider's own curl examples, run against the simulator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from octobatch.simulator import DEMO_KEY, Simulator


def curl(*args: str) -> tuple[int, str]:
    """Run curl; returns (HTTP status, body). `-w` appends the status on a line of its own."""
    done = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True,
                          text=True, timeout=30, check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def submit_form(sim: Simulator, *fields: str, key: str = DEMO_KEY) -> tuple[int, Any]:
    # Shaped like the jimeng page's example: one -F per field.
    form = [arg for field in fields for arg in ("-F", field)]
    status, body = curl("-X", "POST", f"{sim.base_url}/v1/videos",
                        "-H", f"Authorization: Bearer {key}", *form)
    return status, json.loads(body)


def submit_json(sim: Simulator, body: str, key: str = DEMO_KEY) -> tuple[int, Any]:
    # Shaped like the omni-fast page's example: -H for the key and content type, -d for JSON.
    status, text = curl("-X", "POST", f"{sim.base_url}/v1/videos",
                        "-H", f"Authorization: Bearer {key}",
                        "-H", "Content-Type: application/json", "-d", body)
    return status, json.loads(text)


OMNI_EXAMPLE = """{
    "model": "omni-fast",
    "prompt": "Ocean waves gently rolling onto a sandy beach at golden hour, cinematic, warm sunlight",
    "seconds": "8",
    "aspect_ratio": "16:9",
    "resolution": "720p"
  }"""


@pytest.fixture
def sim(simulator_thread: Any) -> Simulator:
    started: Simulator = simulator_thread(latency=0)
    return started


def test_jimeng_text_to_video_example(sim: Simulator) -> None:
    status, body = submit_form(sim, "model=jimeng-video-3.0", "prompt=猫咪在草地上追逐蝴蝶",
                               "seconds=5", "size=1280x720")
    assert status == 200
    assert (body["object"], body["model"], body["status"], body["progress"]) \
        == ("video", "jimeng-video-3.0", "queued", 0)
    assert body["id"] == body["task_id"] and body["id"] in sim.tasks
    assert sim.tasks[body["id"]].prompt == "猫咪在草地上追逐蝴蝶"


def test_jimeng_image_to_video_example(sim: Simulator, tmp_path: Path,
                                       tiny_images: dict[str, bytes]) -> None:
    image = tmp_path / "image.png"
    image.write_bytes(tiny_images["png"])
    status, body = submit_form(sim, "model=jimeng-video-3.0", "prompt=让人物向前走并微笑",
                               "seconds=5", "size=720x1280", f"input_reference=@{image}")
    assert status == 200, body
    assert sim.tasks[body["id"]].params["input_reference"].startswith("png")


def test_omni_fast_example_then_poll_and_download_a_valid_mp4(
        sim: Simulator, tmp_path: Path, mp4_boxes: Any) -> None:
    status, created = submit_json(sim, OMNI_EXAMPLE)
    assert status == 200
    assert created["model"] == "omni-fast" and created["video_url"] == ""
    status, text = curl(f"{sim.base_url}/v1/videos/{created['id']}",
                        "-H", f"Authorization: Bearer {DEMO_KEY}")
    polled = json.loads(text)
    assert status == 200 and polled["status"] == "completed" and polled["progress"] == 100
    out = tmp_path / "video.mp4"
    status, _ = curl("-o", str(out), polled["video_url"])
    assert status == 200
    data = out.read_bytes()
    assert data == sim.expected_video(created["id"])
    boxes = [kind for kind, _ in mp4_boxes(data)]
    assert boxes[0] == "ftyp" and "moov" in boxes and "mdat" in boxes


def test_content_route_streams_the_same_bytes(sim: Simulator, tmp_path: Path) -> None:
    _, created = submit_json(sim, OMNI_EXAMPLE)
    out = tmp_path / "content.mp4"
    status, _ = curl("-o", str(out), f"{sim.base_url}/v1/videos/{created['id']}/content",
                     "-H", f"Authorization: Bearer {DEMO_KEY}")
    assert status == 200 and out.read_bytes() == sim.expected_video(created["id"])


def test_invalid_jimeng_requests_get_errors(sim: Simulator, tmp_path: Path) -> None:
    status, body = submit_form(sim, "model=jimeng-video-3.0", "prompt=p", "seconds=8")
    assert status == 400 and "seconds must be one of 5, 10, 15" in body["message"]
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    status, body = submit_form(sim, "model=jimeng-video-3.0", "prompt=p",
                               f"input_reference=@{notes}")
    assert status == 400 and "not a png, jpeg or webp image" in body["message"]
    assert sim.tasks == {}


def test_jimeng_page_json_example_is_refused(sim: Simulator) -> None:
    # The page's generic snippet sends JSON; the page's text says jimeng takes multipart.
    status, body = submit_json(sim, '{"model": "jimeng-video-3.0", "prompt": "p", '
                                    '"seconds": "5", "size": "720x1280"}')
    assert status == 400 and "multipart/form-data" in body["message"]


def test_invalid_omni_requests_get_errors(sim: Simulator) -> None:
    status, body = submit_json(sim, OMNI_EXAMPLE.replace('"8"', '"45"'))
    assert status == 400 and "seconds must be a whole number from 4 to 30" in body["message"]
    status, body = submit_form(sim, "model=omni-fast", "prompt=p", "seconds=8")
    assert status == 400 and "JSON body" in body["message"]
    status, body = submit_json(sim, "{not json")
    assert status == 400 and body["code"] == "invalid_request"
    assert sim.tasks == {}


def test_wrong_key_is_401_without_echoing_it(sim: Simulator) -> None:
    status, body = submit_json(sim, OMNI_EXAMPLE, key="sk-wrong-secret")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-secret" not in json.dumps(body)
