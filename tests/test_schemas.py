"""The schema files themselves: where they are found, what they encode, how errors read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from octobatch.editor_schema import render_editor_schema
from octobatch.models import known_models, load_models
from octobatch.schemas import (
    FastCheck,
    default_schema_dir,
    did_you_mean,
    document_validator,
    field_label,
    problems,
)

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "schemas"


def test_schemas_are_found_in_the_checkout() -> None:
    assert default_schema_dir() == SCHEMAS


def editor_validator() -> Draft202012Validator:
    """manifest.schema.json as an editor uses it: model rules pulled in through $ref."""
    resources = [
        (p.relative_to(SCHEMAS).as_posix(), Resource.from_contents(json.loads(p.read_text())))
        for p in (SCHEMAS / "models").rglob("*.schema.json")
    ]
    schema = json.loads((SCHEMAS / "manifest.schema.json").read_text())
    return Draft202012Validator(schema, registry=Registry().with_resources(resources))


def test_editor_schema_is_generated_from_the_model_files() -> None:
    committed = (SCHEMAS / "manifest.schema.json").read_text(encoding="utf-8")
    assert committed == render_editor_schema(), (
        "schemas/manifest.schema.json is stale: run "
        "`python -m octobatch.editor_schema > schemas/manifest.schema.json`")


def test_editor_schema_lists_every_model_and_field() -> None:
    schema = json.loads((SCHEMAS / "manifest.schema.json").read_text())
    job_fields = schema["$defs"]["jobFields"]
    assert job_fields["properties"]["model"]["enum"] == known_models()
    branches = {b["if"]["properties"]["model"]["const"]: b["then"]["properties"]
                for b in job_fields["allOf"]}
    assert sorted(branches) == known_models()
    for name, model in load_models().items():
        assert list(branches[name]) == list(model.fields)
        for field, ref in branches[name].items():
            where = model.field_files[field].relative_to(SCHEMAS).as_posix()
            assert ref["$ref"] == f"{where}#/properties/{field}"
            assert (SCHEMAS / where).is_file()


def test_a_stale_editor_schema_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    (copy / "models" / "jimeng-video-4.0.schema.json").write_text(json.dumps({
        "$ref": "families/jimeng.schema.json",
        "properties": {"model": {"const": "jimeng-video-4.0"}}}))
    rendered = json.loads(render_editor_schema(copy))
    assert "jimeng-video-4.0" in rendered["$defs"]["jobFields"]["properties"]["model"]["enum"]
    assert (copy / "manifest.schema.json").read_text() != render_editor_schema(copy)


@pytest.mark.parametrize("name", ["demo.yaml", "example.yaml"])
def test_editor_schema_accepts_the_examples(name: str) -> None:
    document = yaml.safe_load((REPO / "manifests" / name).read_text(encoding="utf-8"))
    assert list(editor_validator().iter_errors(document)) == []


def test_editor_schema_checks_fields_in_place() -> None:
    document = {"version": 1, "jobs": [
        {"id": "a", "model": "jimeng-video-3.0", "prompt": "x", "size": "1920x1080"},
        {"id": "b", "model": "omni-fast", "prompt": "x", "images": ["a"] * 6},
        {"id": "c", "model": "omni-fats", "prompt": "x"},
    ]}
    found = {(tuple(e.absolute_path), e.validator) for e in editor_validator().iter_errors(
        document)}
    assert found == {(("jobs", 0, "size"), "enum"), (("jobs", 1, "images"), "maxItems"),
                     (("jobs", 2, "model"), "enum")}


def valid(model: str, **fields: Any) -> list[str]:
    """Problems of one job, as the loader sees them (numeric strings already numbers)."""
    instance = {"model": model, "prompt": "p", **fields}
    return [f"{field_label(p.path)}: {p.message}" for p in problems(
        load_models()[model].validator, instance)]


JIMENG = ["jimeng-video-3.0", "jimeng-video-2.0"]
OMNI = ["omni-fast", "omni-fast-v2v"]
CLIP = {"video": "https://example.com/a.mp4"}


@pytest.mark.parametrize("model", JIMENG)
def test_jimeng_rules(model: str) -> None:
    assert valid(model) == []
    assert valid(model, seconds=10, size="1280x720", input_reference="a.png") == []
    assert valid(model, seconds="15") == []
    assert valid(model, seconds=7) == ["seconds: must be 5, 10 or 15, got 7"]
    assert valid(model, size="1x1") == ["size: '1x1' is not one of '720x1280', '1280x720'"]
    assert valid(model, aspect_ratio="16:9") == [
        "aspect_ratio: jimeng sets the shape with size: 720x1280 (portrait) or 1280x720 "
        "(landscape)"]
    assert valid(model, prompt="") == ["prompt: must not be empty"]


@pytest.mark.parametrize("model", OMNI)
def test_omni_rules(model: str) -> None:
    extra = CLIP if model == "omni-fast-v2v" else {}
    assert valid(model, seconds=4, aspect_ratio="9:16", resolution="4k", **extra) == []
    assert valid(model, seconds=30, aspect_ratio="16:9", **extra) == []
    for seconds in (3, 31, "eight", 8.5, True):
        [message] = valid(model, seconds=seconds, aspect_ratio="16:9", **extra)
        assert message.startswith("seconds: must be a whole number of seconds from 4 to 30")
    assert valid(model, seconds=8, aspect_ratio="4:3", **extra) == [
        "aspect_ratio: '4:3' is not one of '16:9', '9:16'"]
    assert valid(model, seconds=8, aspect_ratio="16:9", resolution="720", **extra) == [
        "resolution: '720' is not one of '720p', '1080p', '2k', '4k'"]
    # image modes need neither seconds nor aspect_ratio
    assert valid(model, first_image_url="https://e.com/a.jpg", **extra) == []
    assert valid(model, images=["a"] * 5, **extra) == []
    assert valid(model, images=["a"] * 6, **extra) == ["images: has 6 entries; at most 5 allowed"]
    assert valid(model, images=[], **extra) == ["images: has 0 entries; at least 1 needed"]
    assert valid(model, last_image_url="b", images=["a"], **extra) == [
        "last_image_url: needs first_image_url as well"]
    assert valid(model, first_image_url="a", last_image_url="b", **extra) == []


def test_omni_fast_text_to_video_needs_seconds_and_aspect_ratio() -> None:
    message = "required for text-to-video (a job without first_image_url or images)"
    assert valid("omni-fast") == [f"seconds: {message}", f"aspect_ratio: {message}"]


@pytest.mark.parametrize("field", ["video", "video_url", "input_video"])
def test_omni_fast_rejects_reference_video(field: str) -> None:
    assert valid("omni-fast", images=["a"], **{field: "x.mp4"}) == [
        (f"{field}: omni-fast takes no reference video; use model omni-fast-v2v to edit or "
        "extend a clip")]


@pytest.mark.parametrize("field", ["video", "video_url", "input_video"])
def test_v2v_takes_any_one_alias(field: str) -> None:
    assert valid("omni-fast-v2v", **{field: "x.mp4"}) == []


def test_v2v_needs_exactly_one_reference_video() -> None:
    assert valid("omni-fast-v2v") == [
        (": a reference video is required: set video (or its alias video_url or input_video) to "
        "an MP4 URL, data URI or local file")]
    assert valid("omni-fast-v2v", video="a.mp4", video_url="b.mp4") == [
        ": video, video_url and input_video are aliases of one field: set only one"]


def test_did_you_mean() -> None:
    assert did_you_mean("aspect_ration", ["aspect_ratio", "seconds"]) == (
        "did you mean 'aspect_ratio'?")
    assert did_you_mean("zzz", ["aspect_ratio"]) is None


def test_field_labels() -> None:
    assert field_label(("images", 2)) == "images[2]"
    assert field_label(("settings", "timeout")) == "settings.timeout"
    assert field_label(()) == ""


# FastCheck must agree with full validation on anything a manifest can hold.
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 40), st.floats(allow_nan=False),
              st.sampled_from(["", "x", "16:9", "9:16", "720p", "4k", "5", "10", "1280x720",
                               "720x1280", "omni-fast", "jimeng-video-3.0", "a.png"]),
              st.dates(), st.binary(max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=7),
                            st.dictionaries(st.sampled_from(["a", "id"]), inner, max_size=2)),
    max_leaves=10,
)
_FIELDS = ["model", "prompt", "seconds", "size", "aspect_ratio", "resolution", "input_reference",
           "first_image_url", "last_image_url", "images", "video", "video_url", "input_video",
           "first_frame_image", "last_frame_image", "metadata", "duration", "audio", "image",
           "bogus"]


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(sorted(load_models())),
       instance=st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=8))
def test_fast_check_agrees_with_full_validation(model: str, instance: dict[str, Any]) -> None:
    validator = load_models()[model].validator
    assert FastCheck(validator).is_valid(instance) == validator.is_valid(instance)


@settings(max_examples=200, deadline=None)
@given(document=st.dictionaries(
    st.sampled_from(["version", "jobs", "defaults", "settings", "output_dir", "x"]),
    st.one_of(_VALUES, st.lists(st.dictionaries(st.sampled_from(
        ["id", "matrix", "prompt", "model"]), _VALUES, max_size=3), max_size=3)),
    max_size=5))
def test_fast_check_agrees_on_documents(document: dict[str, Any]) -> None:
    validator = document_validator(default_schema_dir())
    assert FastCheck(validator).is_valid(document) == validator.is_valid(document)
