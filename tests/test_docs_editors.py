"""Editor support (docs/editors.md): the manifest schema, resolved the way editors resolve it.

yaml-language-server reads the `$schema` comment, loads manifest.schema.json from disk and
follows its relative `$ref`s to schemas/models/. These tests do the same with jsonschema on
the YAML data, so what an editor completes and flags is what the schemas say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
EXAMPLES = sorted((ROOT / "manifests").glob("*.yaml"))
SCHEMA_COMMENT = "# yaml-language-server: $schema=../schemas/manifest.schema.json"


def _retrieve(uri: str) -> Resource[Any]:
    path = Path(uri.removeprefix("file://"))
    return Resource.from_contents(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    uri = (SCHEMAS / "manifest.schema.json").as_uri()
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    return Draft202012Validator({"$ref": uri}, registry=registry)


def _errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_there_are_example_manifests() -> None:
    assert any(p.name == "demo.yaml" for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_manifest_points_editors_at_the_schema(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_COMMENT
    # The comment's relative path resolves from the manifest's own directory.
    assert (path.parent / "../schemas/manifest.schema.json").resolve().is_file()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_schema_accepts_every_example_manifest(
    validator: Draft202012Validator, path: Path
) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert _errors(validator, document) == []


def _manifest(**job: Any) -> dict[str, Any]:
    return {"version": 1, "jobs": [{"prompt": "A red fox in snow", **job}]}


def test_schema_offers_the_known_models(validator: Draft202012Validator) -> None:
    schema = json.loads((SCHEMAS / "manifest.schema.json").read_text(encoding="utf-8"))
    models = schema["$defs"]["jobFields"]["properties"]["model"]["enum"]
    on_disk = sorted(p.name.removesuffix(".schema.json")
                     for p in (SCHEMAS / "models").glob("*.schema.json"))
    assert sorted(models) == on_disk


def test_schema_rejects_an_unknown_model(validator: Draft202012Validator) -> None:
    errors = _errors(validator, _manifest(model="omni-slow"))
    assert any(e.startswith("jobs/0/model:") and "omni-fast" in e for e in errors), errors


@pytest.mark.parametrize(
    ("job", "where"),
    [
        ({"model": "jimeng-video-3.0", "size": "1920x1080"}, "jobs/0/size"),
        ({"model": "jimeng-video-2.0", "seconds": 7}, "jobs/0/seconds"),
        ({"model": "omni-fast", "aspect_ratio": "4:3", "seconds": 8}, "jobs/0/aspect_ratio"),
        ({"model": "omni-fast", "aspect_ratio": "16:9", "seconds": 99}, "jobs/0/seconds"),
        ({"model": "omni-fast", "images": ["a.png"] * 6}, "jobs/0/images"),
    ],
)
def test_schema_rejects_a_wrong_value_for_the_jobs_model(
    validator: Draft202012Validator, job: dict[str, Any], where: str
) -> None:
    errors = _errors(validator, _manifest(**job))
    assert any(e.startswith(where + ":") for e in errors), errors


def test_per_model_rules_follow_the_model_field(validator: Draft202012Validator) -> None:
    # The same size is right for jimeng and simply not checked against jimeng's list for
    # omni: the per-model rules switch on `model`, which is what drives editor completion.
    assert _errors(validator, _manifest(model="jimeng-video-3.0", size="1280x720")) == []
    assert _errors(validator, _manifest(model="jimeng-video-3.0", size="1280x721")) != []


def test_schema_rejects_an_unknown_top_level_key(validator: Draft202012Validator) -> None:
    errors = _errors(validator, {"version": 1, "jobs": [], "job": []})
    assert errors and "job" in errors[0]
