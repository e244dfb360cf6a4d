"""Model support as data: each `schemas/models/<model>.schema.json` is one model.

A model schema holds the field rules (JSON Schema) and, under `x-octobatch`, how the model's
request is sent:

    "x-octobatch": {
      "transport": "json" | "multipart",
      "file_fields": {"input_reference": "image"},   # multipart file parts: local files only
      "image_fields": ["first_image_url", "images"],  # URL, data: URI or local image
      "video_fields": ["video"],                      # URL, data: URI or local MP4
      "max_video_bytes": 15728640,
      "numeric_fields": ["seconds"]                   # number or numeric string; sent as a string
    }

Adding a model is adding its schema file; nothing here names a model.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator

from octobatch.errors import OctobatchError
from octobatch.jobs import ApiRequest, FilePart, JobSpec
from octobatch.schemas import default_schema_dir, read_schema

SCHEMA_SUFFIX = ".schema.json"
RefKind = Literal["image", "video"]


@dataclass(frozen=True)
class FileField:
    """An API field that may name a local file."""

    kind: RefKind
    local_only: bool  # a multipart file part (not a URL or data: URI)


@dataclass(frozen=True)
class Model:
    name: str
    transport: Literal["json", "multipart"]
    fields: tuple[str, ...]  # API field names, `model` excluded
    file_fields: Mapping[str, FileField]
    numeric_fields: frozenset[str]
    max_video_bytes: int | None
    defaults: Mapping[str, Any]  # the schema's `default`s, applied to jobs that omit the field
    validator: Draft202012Validator
    schema_path: Path


def load_models(schema_dir: Path | None = None) -> dict[str, Model]:
    """Every model in `<schema_dir>/models/`, by name (the default: the shipped schemas)."""
    return _load_models(schema_dir or default_schema_dir())


@functools.cache
def _load_models(schema_dir: Path) -> dict[str, Model]:
    models_dir = schema_dir / "models"
    paths = sorted(models_dir.glob("*" + SCHEMA_SUFFIX))
    if not paths:
        raise OctobatchError(f"{models_dir}: no model schemas found; reinstall octobatch")
    models = {}
    for path in paths:
        model = _model_from_schema(path.name.removesuffix(SCHEMA_SUFFIX), path)
        models[model.name] = model
    return models


def known_models(schema_dir: Path | None = None) -> list[str]:
    return sorted(load_models(schema_dir))


def _model_from_schema(name: str, path: Path) -> Model:
    schema = read_schema(path)
    declaration = schema.get("x-octobatch")
    properties = schema.get("properties", {})

    def bad(what: str) -> OctobatchError:
        return OctobatchError(f"{path}: x-octobatch: {what}")

    if not isinstance(declaration, dict):
        raise bad("missing; every model schema declares its transport")
    transport = declaration.get("transport")
    if transport not in ("json", "multipart"):
        raise bad(f"transport must be 'json' or 'multipart', not {transport!r}")
    file_fields: dict[str, FileField] = {}
    for field_name in declaration.get("image_fields", []):
        file_fields[field_name] = FileField("image", local_only=False)
    for field_name in declaration.get("video_fields", []):
        file_fields[field_name] = FileField("video", local_only=False)
    for field_name, kind in declaration.get("file_fields", {}).items():
        if kind not in ("image", "video"):
            raise bad(f"file_fields.{field_name} must be 'image' or 'video', not {kind!r}")
        file_fields[field_name] = FileField(kind, local_only=True)  # type: ignore[arg-type]
    numeric = frozenset(declaration.get("numeric_fields", []))
    for field_name in (*file_fields, *numeric):
        if field_name not in properties:
            raise bad(f"declares '{field_name}', which is not among the schema's properties")
    if transport == "json" and any(f.local_only for f in file_fields.values()):
        raise bad("file_fields need the multipart transport")
    return Model(
        name=name,
        transport=transport,
        fields=tuple(k for k in properties if k != "model"),
        file_fields=file_fields,
        numeric_fields=numeric,
        max_video_bytes=declaration.get("max_video_bytes"),
        defaults={
            k: v["default"]
            for k, v in properties.items()
            if isinstance(v, dict) and "default" in v
        },
        validator=Draft202012Validator(schema),
        schema_path=path,
    )


def build_request(job: JobSpec, *, schema_dir: Path | None = None) -> ApiRequest:
    """The body of `POST /v1/videos` for `job`, reading its local files now."""
    model = load_models(schema_dir)[job.model]
    local = {f.field: f for f in job.files}
    if model.transport == "multipart":
        form = {"model": job.model}
        form.update({k: _form_text(v) for k, v in job.fields.items() if k not in local})
        parts = tuple(
            FilePart(field=f.field, path=f.path, filename=f.path.name, content_type=f.media_type)
            for f in job.files
        )
        return ApiRequest(transport="multipart", form=form, files=parts)

    def inline(label: str, value: Any) -> Any:
        file = local.get(label)
        return _data_uri(file.path, file.media_type) if file else value

    body: dict[str, Any] = {"model": job.model}
    for key, value in job.fields.items():
        if isinstance(value, list):
            body[key] = [inline(f"{key}[{i}]", item) for i, item in enumerate(value)]
        else:
            body[key] = inline(key, value)
    return ApiRequest(transport="json", json=body)


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _data_uri(path: Path, media_type: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OctobatchError(f"{path}: cannot read: {exc.strerror}") from None
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
