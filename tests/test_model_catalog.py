"""Every documented model: good and bad jobs with the exact errors, and request bodies as the
provider's pages show them (multipart parts and file parts, JSON shapes with nested fields)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from octobatch.errors import ManifestError
from octobatch.manifest import load_manifest
from octobatch.models import build_request, known_models, load_models

ASSETS = Path(__file__).parent / "fixtures" / "manifests" / "assets"


def write(tmp_path: Path, *jobs: dict[str, Any], settings: dict[str, Any] | None = None) -> Path:
    (tmp_path / "first.png").write_bytes((ASSETS / "cat.png").read_bytes())
    (tmp_path / "last.png").write_bytes((ASSETS / "cat.png").read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    document: dict[str, Any] = {"version": 1, "jobs": list(jobs)}
    if settings:
        document["settings"] = settings
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True,
                                   default_flow_style=False))
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return [str(d).removeprefix(f"{path}:") for d in info.value.diagnostics]


def job(model: str, **fields: Any) -> dict[str, Any]:
    return {"id": "j", "model": model, "prompt": "A cat in the rain", **fields}


# (model, fields of a good job, fields of a bad job, its errors as `line:col: job: field: ...`)
CASES = [
    ("doubao-seedance-1-5-pro_720p",
     {"size": "keep_ratio", "seconds": 11, "first_frame_image": "first.png",
      "last_frame_image": "last.png"},
     {"size": "16x9", "seconds": 12, "last_frame_image": "last.png"},
     ["6:9: job 'j': size: '16x9' is not one of '16:9', '4:3', '1:1', '3:4', '9:16', '21:9', "
      "'keep_ratio', 'adaptive'",
      "7:12: job 'j': seconds: must be a whole number of seconds from 4 to 11 (>= 4 and < 12), "
      "got 12",
      "8:21: job 'j': last_frame_image: needs first_frame_image as well"]),
    ("doubao-seedance-1-0-pro_1080p", {"size": "adaptive", "seconds": "4"},
     {"seconds": 3},
     ["6:12: job 'j': seconds: must be a whole number of seconds from 4 to 11 (>= 4 and < 12), "
      "got 3"]),
    ("sora-2",
     {"size": "1280x720", "seconds": "10", "input_reference": "first.png",
      "metadata": {"output_config": {"aspect_ratio": "16:9", "audio_generation": "Disabled",
                                     "resolution": "720P"}}},
     {"size": "1920x1080", "metadata": {"output_config": {"aspect_ratio": "wide"}},
      "character_url": "https://example.com/c.mp4"},
     ["6:9: job 'j': size: '1920x1080' is not one of '720x1280', '1280x720'",
      "9:21: job 'j': metadata.output_config.aspect_ratio: must be an aspect ratio such as "
      "\"16:9\", got 'wide'",
      "10:3: job 'j': character_url: unknown field (known fields: model, prompt, size, seconds, "
      "input_reference, metadata)"]),
    ("grok-video-3",
     {"aspect_ratio": "2:3", "seconds": 6, "size": "720P",
      "input_reference": ["first.png", "last.png"]},
     {"aspect_ratio": "4:3", "size": "720p"},
     ["6:17: job 'j': aspect_ratio: '4:3' is not one of '16:9', '9:16', '2:3', '3:2', '1:1'",
      "7:9: job 'j': size: '720p' is not one of '480P', '540P', '720P', '1080P'"]),
    ("grok-video-3-max", {"seconds": 15}, {"seconds": 10},
     ["6:12: job 'j': seconds: grok-video-3-max always makes 15-second videos; leave seconds "
      "out or set 15, got 10"]),
    ("veo_3_1-fast",
     {"size": "720x1280", "seconds": "8", "input_reference": "https://example.com/a.png",
      "metadata": {"output_config": {"aspect_ratio": "9:16"}, "durationSeconds": 8}},
     {"size": "720p", "metadata": {"output_config": "9:16"}},
     ["6:9: job 'j': size: must be WIDTHxHEIGHT, e.g. 1280x720, got '720p'",
      "8:20: job 'j': metadata.output_config: must be a mapping, not a string"]),
    ("Kling-3.0-Omni",
     {"seconds": "15", "image": "https://example.com/a.png",
      "metadata": {"output_config": {"resolution": "1080P", "aspect_ratio": "1:1",
                                     "audio_generation": "Enabled"},
                   "last_frame_url": "https://example.com/b.png", "offpeak": True}},
     {"seconds": 7, "image": "first.png", "metadata": {"scene_type": "dance"}},
     ["6:12: job 'j': seconds: must be 5, 10 or 15, got 7",
      "7:10: job 'j': image: must be a public http(s) URL, got 'first.png'",
      "9:17: job 'j': metadata.scene_type: 'dance' is not one of 'motion_control', "
      "'avatar_i2v', 'lip_sync', 'template_effect'"]),
    ("Kling-2.5", {"seconds": 10}, {"seconds": 15},
     ["6:12: job 'j': seconds: must be 5 or 10 (Kling-2.5 makes 5 to 10 seconds), got 15"]),
    ("doubao-seedance-2-0-fast-260128",
     {"content": [{"type": "image_url", "image_url": {"url": "asset://a1"},
                   "role": "first_frame"}], "metadata": {"duration": -1, "ratio": "adaptive"}},
     {"metadata": {"duration": 20}},
     ["7:15: job 'j': metadata.duration: must be a whole number of seconds from 4 to 15, or -1 "
      "(the model decides)"]),
    ("viduq3-pro",
     {"images": "first.png", "aspect_ratio": "4:3", "audio": True, "duration": 5, "seed": 0},
     {"images": ["first.png"], "audio": "yes", "duration": 0},
     ["7:3: job 'j': images: must be a string, not a list",
      "8:10: job 'j': audio: must be true or false, not a string",
      "9:13: job 'j': duration: must be a whole number of seconds, got 0"]),
]


@pytest.mark.parametrize(("model", "good", "bad", "expected"), CASES, ids=[c[0] for c in CASES])
def test_good_and_bad_jobs(tmp_path: Path, model: str, good: dict[str, Any],
                           bad: dict[str, Any], expected: list[str]) -> None:
    [spec] = load_manifest(write(tmp_path, job(model, **good))).jobs
    assert spec.model == model
    assert errors(write(tmp_path, job(model, **bad))) == expected


def test_every_new_family_has_a_case() -> None:
    def family(name: str) -> Path:
        return load_models()[name].field_files["prompt"]

    covered = {family(c[0]) for c in CASES}
    assert {family(m) for m in known_models()
            if not m.startswith(("omni-fast", "jimeng-video"))} <= covered


def test_file_parts_are_checked_by_content_and_must_be_local(tmp_path: Path) -> None:
    path = write(tmp_path, job("doubao-seedance-1-5-pro_480p", first_frame_image="notes.txt"),
                 {**job("grok-video-3-pro", input_reference=["first.png", "notes.txt"]),
                  "id": "g"},
                 {**job("doubao-seedance-1-0-pro_480p",
                        first_frame_image="https://example.com/a.png"), "id": "u"})
    assert errors(path) == [
        "6:22: job 'j': first_frame_image: 'notes.txt' is not a PNG, JPEG or WebP image (its "
        "content is not recognised)",
        "12:5: job 'g': input_reference[1]: 'notes.txt' is not a PNG, JPEG or WebP image (its "
        "content is not recognised)",
        "16:22: job 'u': first_frame_image: must be a local image file: "
        "doubao-seedance-1-0-pro_480p uploads it (download it and give its path relative to "
        "the manifest)"]


def test_doubao_request_is_multipart_with_both_frames_as_file_parts(tmp_path: Path) -> None:
    [spec] = load_manifest(write(tmp_path, job(
        "doubao-seedance-1-5-pro_720p", size="16:9", seconds=5,
        first_frame_image="first.png", last_frame_image="last.png"))).jobs
    request = build_request(spec)
    assert request.transport == "multipart" and request.json is None
    assert request.form == {"model": "doubao-seedance-1-5-pro_720p",
                            "prompt": "A cat in the rain", "size": "16:9", "seconds": "5"}
    assert [(p.field, p.filename, p.content_type) for p in request.files] == [
        ("first_frame_image", "first.png", "image/png"),
        ("last_frame_image", "last.png", "image/png")]


def test_grok_uploads_each_reference_as_its_own_input_reference_part(tmp_path: Path) -> None:
    [spec] = load_manifest(write(tmp_path, job(
        "grok-video-3", aspect_ratio="2:3", seconds=6, size="720P",
        input_reference=["first.png", "last.png"]))).jobs
    request = build_request(spec)
    assert request.form == {"model": "grok-video-3", "prompt": "A cat in the rain",
                            "aspect_ratio": "2:3", "seconds": "6", "size": "720P"}
    assert [(p.field, p.filename) for p in request.files] == [
        ("input_reference", "first.png"), ("input_reference", "last.png")]


def test_fixed_duration_grok_models_send_their_duration(tmp_path: Path) -> None:
    [spec] = load_manifest(write(tmp_path, job("grok-video-3-pro"))).jobs
    assert build_request(spec).form["seconds"] == "10" and spec.seconds == 10


def test_vidu_sends_a_local_image_as_a_file_and_a_url_as_text(tmp_path: Path) -> None:
    local, remote = load_manifest(write(
        tmp_path, job("viduq2-pro", images="first.png", audio=True, duration=5),
        {**job("viduq2-turbo", images="https://example.com/a.png"), "id": "k"})).jobs
    request = build_request(local)
    assert request.form == {"model": "viduq2-pro", "prompt": "A cat in the rain",
                            "audio": "true", "duration": "5", "aspect_ratio": "16:9"}
    assert [(p.field, p.content_type) for p in request.files] == [("images", "image/png")]
    request = build_request(remote)
    assert request.form["images"] == "https://example.com/a.png" and request.files == ()


def test_sora_request_is_json_with_a_data_uri_and_nested_metadata(tmp_path: Path) -> None:
    config = {"aspect_ratio": "9:16", "audio_generation": "Disabled", "resolution": "720P"}
    [spec] = load_manifest(write(tmp_path, job(
        "sora-2", size="720x1280", seconds=10, input_reference="first.png",
        metadata={"output_config": config}))).jobs
    body = dict(build_request(spec).json or {})
    png = base64.b64encode((ASSETS / "cat.png").read_bytes()).decode()
    assert body == {"model": "sora-2", "prompt": "A cat in the rain", "size": "720x1280",
                    "seconds": "10", "input_reference": f"data:image/png;base64,{png}",
                    "metadata": {"output_config": config}}


def test_kling_request_keeps_metadata_nested_as_written(tmp_path: Path) -> None:
    metadata = {"output_config": {"resolution": "720P", "aspect_ratio": "16:9"},
                "scene_type": "motion_control", "motion_level": "std",
                "video_url": "https://example.com/move.mp4"}
    [spec] = load_manifest(write(tmp_path, job("Kling-3.0-Omni", seconds=5,
                                               image="https://example.com/a.png",
                                               metadata=metadata))).jobs
    assert build_request(spec).json == {"model": "Kling-3.0-Omni", "prompt": "A cat in the rain",
                                        "seconds": "5", "image": "https://example.com/a.png",
                                        "metadata": metadata}


def test_nested_values_change_the_spec_hash(tmp_path: Path) -> None:
    first = load_manifest(write(tmp_path, job("veo_3_1", metadata={
        "output_config": {"resolution": "720P"}}))).jobs[0]
    second = load_manifest(write(tmp_path, job("veo_3_1", metadata={
        "output_config": {"resolution": "1080P"}}))).jobs[0]
    assert first.spec_hash != second.spec_hash


def test_every_model_records_its_page_and_what_the_page_leaves_open() -> None:
    for name in known_models():
        model = load_models()[name]
        assert model.source and model.source.startswith("https://"), name
        assert model.unsaid, name
