"""The provider's own curl examples for every model family, replayed against the simulator.

Each request is the page's example as written (docs.octopusx.ai/en/videos/...), with the
page's placeholders (YOUR_API_KEY, /path/to/first-frame.png, BASE64_IMAGE) filled in with the
demo key and real small images; the simulator's rules are its own reading of the same pages.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from test_simulator_curl import submit_form, submit_json

from octobatch.simulator import Simulator


@pytest.fixture
def sim(simulator_thread: Any) -> Simulator:
    started: Simulator = simulator_thread(latency=0)
    return started


@pytest.fixture
def png(tmp_path: Path, tiny_images: dict[str, bytes]) -> Path:
    path = tmp_path / "first-frame.png"
    path.write_bytes(tiny_images["png"])
    (tmp_path / "last-frame.png").write_bytes(tiny_images["png"])
    (tmp_path / "reference.png").write_bytes(tiny_images["png"])
    return path


def accepted(sim: Simulator, answer: tuple[int, Any], model: str) -> dict[str, Any]:
    status, body = answer
    assert status == 200, body
    assert body["model"] == model and body["status"] == "queued" and body["id"] in sim.tasks
    params: dict[str, Any] = sim.tasks[body["id"]].params
    return params


def refused(answer: tuple[int, Any], words: str) -> None:
    status, body = answer
    assert status == 400 and words in body["message"], body


# docs.octopusx.ai/en/videos/jimeng/doubao-generation: the three request examples
def test_doubao_text_first_frame_and_first_last_frame_examples(sim: Simulator, png: Path
                                                               ) -> None:
    model = "doubao-seedance-1-5-pro_720p"
    params = accepted(sim, submit_form(
        sim, f"model={model}",
        "prompt=The cat listens to music and nods its head while rain pours down",
        "size=4:3", "seconds=4"), model)
    assert params == {"size": "4:3", "seconds": "4"}
    params = accepted(sim, submit_form(
        sim, f"model={model}", "prompt=Have the character walk forward and smile", "size=16:9",
        "seconds=5", f"first_frame_image=@{png}"), model)
    assert params["first_frame_image"].startswith("png")
    params = accepted(sim, submit_form(
        sim, f"model={model}", "prompt=The character turns around", "size=16:9", "seconds=5",
        f"first_frame_image=@{png}", f"last_frame_image=@{png.parent / 'last-frame.png'}"),
        model)
    assert params["last_frame_image"].startswith("png")


def test_doubao_rules(sim: Simulator, png: Path, tmp_path: Path) -> None:
    model = "doubao-seedance-1-0-pro_480p"
    refused(submit_form(sim, f"model={model}", "prompt=p", "seconds=12"),
            "seconds must be >= 4 and < 12")
    refused(submit_form(sim, f"model={model}", "prompt=p", "size=5:4"), "size must be one of")
    refused(submit_form(sim, f"model={model}", "prompt=p", f"last_frame_image=@{png}"),
            "last_frame_image needs first_frame_image")
    (tmp_path / "notes.txt").write_text("not an image")
    refused(submit_form(sim, f"model={model}", "prompt=p",
                        f"first_frame_image=@{tmp_path / 'notes.txt'}"), "not a png, jpeg")
    refused(submit_json(sim, f'{{"model": "{model}", "prompt": "p"}}'), "multipart/form-data")
    assert sim.tasks == {}


# docs.octopusx.ai/en/videos/sora/generation: the request example, BASE64_IMAGE filled in
def test_sora_example(sim: Simulator, tiny_images: dict[str, bytes]) -> None:
    image = base64.b64encode(tiny_images["png"]).decode()
    params = accepted(sim, submit_json(sim, """{
    "model": "sora-2",
    "prompt": "Cat nodding its head to music, heavy rain",
    "size": "720x1280",
    "seconds": "10",
    "input_reference": "data:image/png;base64,BASE64_IMAGE",
    "metadata": {
      "output_config": {
        "aspect_ratio": "9:16",
        "audio_generation": "Disabled",
        "resolution": "720P"
      }
    }
  }""".replace("BASE64_IMAGE", image)), "sora-2")
    assert params["metadata"]["output_config"]["aspect_ratio"] == "9:16"
    refused(submit_json(sim, '{"model": "sora-2", "prompt": "p", "size": "1920x1080"}'),
            "size must be one of 720x1280, 1280x720")
    # the page's placeholder itself is not base64: the simulator says so
    refused(submit_json(sim, '{"model": "sora-2", "prompt": "p", '
                             '"input_reference": "data:image/png;base64,BASE64_IMAGE"}'),
            "invalid base64")


# docs.octopusx.ai/en/videos/grok/generation: the request example (reference.png beside it)
def test_grok_example_and_fixed_durations(sim: Simulator, png: Path) -> None:
    reference = png.parent / "reference.png"
    params = accepted(sim, submit_form(
        sim, "model=grok-video-3", "prompt=猫咪听歌摇头晃脑,下大雨", "aspect_ratio=2:3",
        "seconds=6", "size=720P", f"input_reference=@{reference}"), "grok-video-3")
    assert params["seconds"] == "6" and len(params["input_reference"]) == 1
    params = accepted(sim, submit_form(
        sim, "model=grok-video-3-max", "prompt=p", "seconds=6", f"input_reference=@{reference}",
        f"input_reference=@{png}"), "grok-video-3-max")
    assert params["seconds"] == "15" and len(params["input_reference"]) == 2
    refused(submit_form(sim, "model=grok-video-3", "prompt=p", "aspect_ratio=4:3"),
            "aspect_ratio must be one of")


# docs.octopusx.ai/en/videos/veo/generation: the request example, BASE64_IMAGE filled in
def test_veo_example(sim: Simulator, tiny_images: dict[str, bytes]) -> None:
    image = base64.b64encode(tiny_images["png"]).decode()
    params = accepted(sim, submit_json(sim, """{
    "model": "veo_3_1-fast",
    "prompt": "Dance in the center of the square",
    "size": "720x1280",
    "seconds": "8",
    "input_reference": "data:image/png;base64,BASE64_IMAGE",
    "metadata": {
      "output_config": {
        "aspect_ratio": "9:16",
        "audio_generation": "Disabled",
        "resolution": "720P"
      }
    }
  }""".replace("BASE64_IMAGE", image)), "veo_3_1-fast")
    assert params["size"] == "720x1280"
    refused(submit_json(sim, '{"model": "veo_3_1", "prompt": "p", "size": "720p"}'),
            "size must look like 1280x720")


# docs.octopusx.ai/en/videos/kling/generation: the request example
def test_kling_example(sim: Simulator) -> None:
    params = accepted(sim, submit_json(sim, """{
    "model": "Kling-3.0-Omni",
    "prompt": "Cyberpunk city night scene, the camera slowly pushes in",
    "seconds": "5",
    "metadata": {
      "output_config": {
        "resolution": "720P",
        "aspect_ratio": "16:9"
      }
    }
  }"""), "Kling-3.0-Omni")
    assert params["seconds"] == "5"
    refused(submit_json(sim, '{"model": "Kling-2.6", "prompt": "p", "seconds": "15"}'),
            "seconds must be one of 5, 10 for Kling-2.6")
    refused(submit_json(sim, '{"model": "Kling-2.5", "prompt": "p", '
                             '"metadata": {"output_config": {"resolution": "4K"}}}'),
            "metadata.output_config.resolution must be one of 720P, 1080P")


# docs.octopusx.ai/en/videos/vidu/vidu-generation: text and image examples
def test_vidu_examples(sim: Simulator, png: Path) -> None:
    params = accepted(sim, submit_form(
        sim, "model=viduq3-pro", "prompt=A cat chasing butterflies on the grass",
        "aspect_ratio=16:9", "duration=5"), "viduq3-pro")
    assert params == {"aspect_ratio": "16:9", "duration": 5}
    params = accepted(sim, submit_form(
        sim, "model=viduq3-pro", "prompt=Have the person walk forward and smile",
        "duration=5", f"images=@{png}"), "viduq3-pro")
    assert params["images"].startswith("png")
    refused(submit_form(sim, "model=viduq2-turbo", "prompt=p", "audio=maybe"),
            "audio must be true or false")


def test_a_model_nobody_documents_is_unavailable(sim: Simulator) -> None:
    status, body = submit_json(sim, '{"model": "sora-3", "prompt": "p"}')
    assert status == 503 and body["error"]["code"] == "model_not_found"
