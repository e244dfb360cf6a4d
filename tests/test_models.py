"""Model support is data: request building from the schema declarations, and new models."""

from __future__ import annotations

import ast
import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from octobatch.errors import OctobatchError
from octobatch.inputs import InputFileError
from octobatch.manifest import load_manifest
from octobatch.models import build_request, known_models, load_models
from octobatch.schemas import default_schema_dir

FIXTURES = Path(__file__).parent / "fixtures" / "manifests"


def test_known_models_are_the_model_files() -> None:
    on_disk = sorted(p.name.removesuffix(".schema.json")
                     for p in (default_schema_dir() / "models").glob("*.schema.json"))
    assert known_models() == on_disk and len(on_disk) >= 4
    assert all(m.source and m.source.startswith("https://") for m in load_models().values())


def test_a_family_file_is_shared_not_copied() -> None:
    models = load_models()
    family = default_schema_dir() / "models" / "families" / "jimeng.schema.json"
    for name in ("jimeng-video-2.0", "jimeng-video-3.0"):
        model = models[name]
        assert model.field_files["seconds"] == family and model.field_files["model"] == (
            model.schema_path)
        assert model.schema["properties"]["model"] == {"const": name}
        assert "seconds" not in json.loads(model.schema_path.read_text())["properties"]
    assert models["jimeng-video-2.0"].validator.is_valid({"model": "jimeng-video-2.0",
                                                          "prompt": "p", "seconds": "10"})
    assert not models["jimeng-video-2.0"].validator.is_valid({"model": "jimeng-video-3.0",
                                                              "prompt": "p"})


def test_the_simulator_does_not_read_the_clients_model_rules() -> None:
    source = (Path(__file__).parent.parent / "octobatch" / "simulator" / "validation.py")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
    assert not {m for m in imported if m and m.startswith("octobatch")
                and not m.startswith("octobatch.simulator")}


def test_declarations_are_read_from_the_schemas() -> None:
    models = load_models()
    assert models["jimeng-video-3.0"].transport == "multipart"
    assert models["jimeng-video-3.0"].file_fields["input_reference"].local_only
    assert models["omni-fast"].transport == "json"
    assert set(models["omni-fast-v2v"].file_fields) == {
        "first_image_url", "last_image_url", "images", "video", "video_url", "input_video"}
    assert models["omni-fast-v2v"].max_video_bytes == 15 * 1024 * 1024
    assert models["jimeng-video-2.0"].defaults == {"seconds": "5", "size": "720x1280"}


def test_json_request_inlines_local_files_as_data_uris_at_call_time(tmp_path: Path) -> None:
    cat = (FIXTURES / "assets" / "cat.png").read_bytes()
    (tmp_path / "a.png").write_bytes(cat)
    (tmp_path / "clip.mp4").write_bytes((FIXTURES / "assets" / "clip.mp4").read_bytes())
    (tmp_path / "m.yaml").write_text("""\
version: 1
jobs:
  - id: a
    model: omni-fast-v2v
    prompt: x
    seconds: 6
    images: [a.png, "https://example.com/b.jpg"]
    input_video: clip.mp4
""")
    [job] = load_manifest(tmp_path / "m.yaml").jobs
    request = build_request(job)
    assert request.transport == "json" and request.form == {} and request.files == ()
    body = dict(request.json or {})
    assert body["model"] == "omni-fast-v2v" and body["seconds"] == "6"
    assert body["images"][1] == "https://example.com/b.jpg"
    assert body["images"][0] == "data:image/png;base64," + base64.b64encode(cat).decode()
    assert body["input_video"].startswith("data:video/mp4;base64,AAAA")
    json.dumps(body)  # the body is plain JSON
    # Read when the request is built, and only if it is still what the job was hashed with.
    (tmp_path / "a.png").write_bytes(cat + b"later")
    with pytest.raises(InputFileError) as info:
        build_request(job)
    assert info.value.message == (
        f"images[0]: '{os.path.relpath(tmp_path / 'a.png')}' changed after the manifest was "
        "validated")


def test_multipart_request_sends_the_reference_as_a_file_part() -> None:
    jobs = {j.id: j for j in load_manifest(FIXTURES / "every-rule.yaml").jobs}
    request = build_request(jobs["jimeng-image"])
    assert request.transport == "multipart" and request.json is None
    assert request.form == {"model": "jimeng-video-3.0", "seconds": "10",
                            "prompt": "猫咪在草地上追逐蝴蝶", "size": "720x1280"}
    [part] = request.files
    assert (part.field, part.filename, part.content_type) == (
        "input_reference", "cat.png", "image/png")
    assert part.data == (FIXTURES / "assets" / "cat.png").read_bytes()


def _schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), target)
    return target


def test_a_new_model_is_one_schema_file(tmp_path: Path) -> None:
    schemas = _schema_copy(tmp_path)
    (schemas / "models" / "toy-video-1.schema.json").write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-octobatch": {"transport": "multipart", "file_fields": {"input_reference": "image"},
                        "numeric_fields": ["seconds"]},
        "type": "object",
        "properties": {
            "model": {"const": "toy-video-1"},
            "prompt": {"type": "string", "minLength": 1},
            "seconds": {"type": ["integer", "string"], "enum": [4, 8, 12, "4", "8", "12"],
                        "default": 4},
            "size": {"type": "string", "enum": ["1280x720", "720x1280"]},
            "input_reference": {"type": "string"},
        },
        "required": ["model", "prompt"],
        "additionalProperties": False,
    }))
    (tmp_path / "ref.png").write_bytes((FIXTURES / "assets" / "cat.png").read_bytes())
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\njobs:\n  - {id: s, model: toy-video-1, prompt: x, seconds: 8,"
                        " input_reference: ref.png}\n  - {id: t, model: toy-video-1, prompt: y,"
                        " size: 1920x1080}\n")
    assert "toy-video-1" in known_models(schemas)
    assert "toy-video-1" not in known_models()
    with pytest.raises(OctobatchError) as info:
        load_manifest(manifest, schema_dir=schemas)
    assert str(info.value).splitlines()[0] == (
        f"{manifest}:4:50: job 't': size: '1920x1080' is not one of '1280x720', '720x1280'")
    manifest.write_text(manifest.read_text().replace("1920x1080", "720x1280"))
    jobs = load_manifest(manifest, schema_dir=schemas).jobs
    request = build_request(jobs[0], schema_dir=schemas)
    assert request.form == {"model": "toy-video-1", "prompt": "x", "seconds": "8"}
    assert request.files[0].field == "input_reference"
    assert jobs[1].fields["seconds"] == "4"  # the new schema's default


@pytest.mark.parametrize(("declaration", "message"), [
    (None, "x-octobatch: missing; every model schema declares its transport"),
    ({"transport": "grpc"}, "transport must be 'json' or 'multipart', not 'grpc'"),
    ({"transport": "json", "image_fields": ["nope"]},
     "declares 'nope', which is not among the schema's properties"),
    ({"transport": "json", "file_fields": {"prompt": "image"}},
     "file_fields need the multipart transport"),
    ({"transport": "multipart", "file_fields": {"prompt": "audio"}},
     "file_fields.prompt must be 'image' or 'video', not 'audio'"),
])
def test_broken_declarations_are_named(tmp_path: Path, declaration: object, message: str
                                       ) -> None:
    schemas = _schema_copy(tmp_path)
    schema: dict[str, object] = {"type": "object", "properties": {"model": {}, "prompt": {}}}
    if declaration is not None:
        schema["x-octobatch"] = declaration
    (schemas / "models" / "broken.schema.json").write_text(json.dumps(schema))
    with pytest.raises(OctobatchError, match="broken.schema.json") as info:
        load_models(schemas)
    assert message in str(info.value)
