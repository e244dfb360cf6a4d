"""Every request rule the simulator enforces, each with an accepted and a rejected request."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from octobatch.simulator import DEMO_KEY, Simulator
from octobatch.simulator.video import base_clip

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
T2V = {"model": "omni-fast", "prompt": "Ocean waves", "seconds": "8", "aspect_ratio": "16:9"}
URL = "https://example.com/frame.jpg"


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def post_json(sim: Simulator, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, \
            s.post(f"{sim.base_url}/v1/videos", json=body, headers=AUTH) as r:
        return r.status, await r.json()


async def post_form(sim: Simulator, fields: list[tuple[str, Any]]) -> tuple[int, Any]:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields:
        if isinstance(value, bytes):
            form.add_field(name, value, filename=f"{name}.bin",
                           content_type="application/octet-stream")
        else:
            form.add_field(name, value)
    async with aiohttp.ClientSession() as s, \
            s.post(f"{sim.base_url}/v1/videos", data=form, headers=AUTH) as r:
        return r.status, await r.json()


def assert_rejected(status: int, body: Any, fragment: str) -> None:
    assert status == 400, body
    assert set(body) == {"code", "message", "data"} and body["data"] is None
    assert body["code"] == "invalid_request"
    assert fragment in body["message"]


# -- omni-fast / omni-fast-v2v (JSON) -------------------------------------------------------

def omni_valid_bodies(images: dict[str, bytes]) -> list[dict[str, Any]]:
    return [
        T2V,
        {**T2V, "seconds": 30, "aspect_ratio": "9:16", "resolution": "4K"},
        {**T2V, "seconds": "4", "resolution": "1080p"},
        {"model": "omni-fast", "prompt": "p", "first_image_url": URL},
        {"model": "omni-fast", "prompt": "p",
         "first_image_url": data_uri("image/png", images["png"]),
         "last_image_url": data_uri("image/jpeg", images["jpeg"])},
        {"model": "omni-fast", "prompt": "p", "images": [data_uri("image/webp", images["webp"]),
                                                          data_uri("image/jpg", images["jpeg"]),
                                                          URL, URL, URL]},
        {"model": "omni-fast-v2v", "prompt": "p", "video": "https://example.com/in.mp4"},
        {"model": "omni-fast-v2v", "prompt": "p", "video_url": data_uri("video/mp4", base_clip()),
         "seconds": "10", "aspect_ratio": "16:9"},
        {"model": "omni-fast-v2v", "prompt": "p", "input_video": "https://example.com/in.mp4",
         "images": [URL]},
    ]


@pytest.mark.parametrize("index", range(9))
async def test_valid_omni_bodies_create_a_task(simulator: Simulator, tiny_images: dict[str, bytes],
                                               index: int) -> None:
    body = omni_valid_bodies(tiny_images)[index]
    status, answer = await post_json(simulator, body)
    assert status == 200, answer
    assert answer["model"] == body["model"] and answer["status"] == "queued"
    assert list(simulator.tasks) == [answer["id"]]


BIG_VIDEO = base_clip() + bytes(15 * 1024 * 1024)

OMNI_INVALID: list[tuple[dict[str, Any], str]] = [
    ({"prompt": "p", "seconds": "8", "aspect_ratio": "16:9"}, "model is required"),
    ({**T2V, "prompt": ""}, "prompt is required"),
    ({k: v for k, v in T2V.items() if k != "prompt"}, "prompt is required"),
    ({**T2V, "seconds": "3"}, "seconds must be a whole number from 4 to 30"),
    ({**T2V, "seconds": 31}, "seconds must be a whole number from 4 to 30"),
    ({**T2V, "seconds": "8.5"}, "seconds must be a whole number"),
    ({**T2V, "seconds": True}, "seconds must be a whole number"),
    ({**T2V, "seconds": [8]}, "seconds must be a whole number"),
    ({**T2V, "aspect_ratio": "2:1"}, "aspect_ratio must be one of"),
    ({**T2V, "resolution": "8k"}, "resolution must be one of"),
    ({**T2V, "duration": 8}, "unknown field 'duration'"),
    ({k: v for k, v in T2V.items() if k != "seconds"}, "seconds is required for text-to-video"),
    ({k: v for k, v in T2V.items() if k != "aspect_ratio"},
     "aspect_ratio is required for text-to-video"),
    ({**T2V, "first_image_url": "frame.jpg"}, "must be a public http(s) URL or a data:image"),
    ({**T2V, "first_image_url": 5}, "first_image_url must be a string"),
    ({**T2V, "first_image_url": "data:image/png;base64,%%%"}, "invalid base64"),
    ({**T2V, "first_image_url": "data:image/png,abc"}, "not a valid data URI"),
    ({**T2V, "first_image_url": data_uri("image/gif", b"GIF89a")}, "unsupported image type"),
    ({**T2V, "first_image_url": data_uri("image/png", b"not an image")},
     "says image/png but the data is not an image"),
    ({**T2V, "last_image_url": URL}, "last_image_url needs first_image_url"),
    ({**T2V, "images": [URL] * 6}, "images takes at most 5 references, got 6"),
    ({**T2V, "images": []}, "images must be a list of 1 to 5"),
    ({**T2V, "images": URL}, "images must be a list of 1 to 5"),
    ({**T2V, "images": [URL, "nope"]}, "images[1] must be a public http(s) URL"),
    ({**T2V, "video": URL}, "omni-fast does not accept a reference video (video)"),
    ({**T2V, "input_video": URL}, "omni-fast does not accept a reference video (input_video)"),
    ({"model": "omni-fast-v2v", "prompt": "p"}, "omni-fast-v2v needs a reference video"),
    ({"model": "omni-fast-v2v", "prompt": "p", "video": URL, "video_url": URL},
     "give the reference video once"),
    ({"model": "omni-fast-v2v", "prompt": "p", "video": "clip.mp4"}, "must be a public MP4 URL"),
    ({"model": "omni-fast-v2v", "prompt": "p", "video": data_uri("video/mp4", b"x" * 64)},
     "video must be an MP4 video"),
    ({"model": "omni-fast-v2v", "prompt": "p", "video": data_uri("video/mp4", BIG_VIDEO)},
     "the reference video limit is 15 MB"),
]


@pytest.mark.parametrize(("body", "fragment"), OMNI_INVALID,
                         ids=[fragment[:40] for _, fragment in OMNI_INVALID])
async def test_invalid_omni_bodies_are_rejected(simulator: Simulator, body: dict[str, Any],
                                                fragment: str) -> None:
    status, answer = await post_json(simulator, body)
    assert_rejected(status, answer, fragment)
    assert simulator.tasks == {}
    assert simulator.requests[-1].status == 400


async def test_wrong_image_type_in_a_data_uri_is_named(simulator: Simulator,
                                                       tiny_images: dict[str, bytes]) -> None:
    body = {**T2V, "images": [data_uri("image/png", tiny_images["jpeg"])]}
    status, answer = await post_json(simulator, body)
    assert_rejected(status, answer, "images[0]: says image/png but the data is a jpeg image")


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
async def test_bodies_that_are_not_a_json_object_are_rejected(simulator: Simulator,
                                                              body: bytes) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s, \
            s.post(f"{simulator.base_url}/v1/videos", data=body, headers=headers) as r:
        assert_rejected(r.status, await r.json(), "JSON")


async def test_other_content_types_are_rejected(simulator: Simulator) -> None:
    form = {"model": "omni-fast"}  # aiohttp sends a dict as urlencoded, not multipart
    async with aiohttp.ClientSession() as s, \
            s.post(f"{simulator.base_url}/v1/videos", data=form, headers=AUTH) as r:
        assert_rejected(r.status, await r.json(), "send multipart/form-data")


async def test_unknown_model_is_503_in_the_openai_shape(simulator: Simulator) -> None:
    status, answer = await post_json(simulator, {**T2V, "model": "sora-9"})
    assert status == 503
    assert answer["error"]["code"] == "model_not_found"
    assert "sora-9" in answer["error"]["message"] and "not available" in answer["error"]["message"]


async def test_omni_as_multipart_is_rejected(simulator: Simulator) -> None:
    status, answer = await post_form(simulator, list(T2V.items()))
    assert_rejected(status, answer, "omni-fast takes a JSON body")


async def test_jimeng_as_json_is_rejected(simulator: Simulator) -> None:
    status, answer = await post_json(simulator, {"model": "jimeng-video-3.0", "prompt": "p"})
    assert_rejected(status, answer, "jimeng-video-3.0 takes multipart/form-data")


# -- jimeng (multipart) ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["png", "jpeg", "webp", None])
@pytest.mark.parametrize("model", ["jimeng-video-3.0", "jimeng-video-2.0"])
async def test_valid_jimeng_forms_create_a_task(simulator: Simulator,
                                                tiny_images: dict[str, bytes],
                                                model: str, kind: str | None) -> None:
    fields: list[tuple[str, Any]] = [("model", model), ("prompt", "猫咪在草地上追逐蝴蝶")]
    if kind is not None:
        fields += [("seconds", "15"), ("size", "1280x720"), ("input_reference", tiny_images[kind])]
    status, answer = await post_form(simulator, fields)
    assert status == 200, answer
    task = simulator.tasks[answer["id"]]
    assert task.prompt == "猫咪在草地上追逐蝴蝶" and task.model == model
    if kind is None:  # the documented defaults
        assert (task.params["seconds"], task.params["size"]) == ("5", "720x1280")
    else:
        assert task.params["input_reference"].startswith(kind)


JIMENG = [("model", "jimeng-video-3.0"), ("prompt", "p")]
JIMENG_INVALID: list[tuple[list[tuple[str, Any]], str]] = [
    ([("model", "jimeng-video-3.0")], "prompt is required"),
    ([*JIMENG, ("seconds", "8")], "seconds must be one of 5, 10, 15, got '8'"),
    ([*JIMENG, ("size", "1920x1080")], "size must be one of 720x1280, 1280x720"),
    ([*JIMENG, ("aspect_ratio", "16:9")], "unknown field 'aspect_ratio'"),
    ([*JIMENG, ("input_reference", "cat.png")], "input_reference must be uploaded as a file"),
    ([*JIMENG, ("input_reference", b"GIF89a....")], "input_reference is not a png, jpeg or webp"),
    ([*JIMENG, ("input_reference", b"")], "input_reference is not a png, jpeg or webp"),
    ([*JIMENG, ("prompt", "again")], "field 'prompt' given more than once"),
    ([("model", b"jimeng-video-3.0"), ("prompt", "p")], "model is required"),
    ([*JIMENG, ("seconds", b"5")], "field 'seconds' must be text, not a file"),
]


@pytest.mark.parametrize(("fields", "fragment"), JIMENG_INVALID,
                         ids=[fragment[:40] for _, fragment in JIMENG_INVALID])
async def test_invalid_jimeng_forms_are_rejected(simulator: Simulator,
                                                 fields: list[tuple[str, Any]],
                                                 fragment: str) -> None:
    status, answer = await post_form(simulator, fields)
    assert_rejected(status, answer, fragment)
    assert simulator.tasks == {}
