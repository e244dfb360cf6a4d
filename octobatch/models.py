"""Model support as data: each `<models dir>/<model>.schema.json` is one model.

A model file holds the field rules (JSON Schema) and, under `x-octobatch`, how the model's
request is sent and where its rules come from:

    "x-octobatch": {
      "source": "https://docs.octopusx.ai/...",       # the provider page the rules are from
      "transport": "json" | "multipart",
      "provider": "octopusx",                         # the dialect that serves it (default)
      "file_fields": {"input_reference": "image"},   # multipart file parts: local files only
      "image_fields": ["first_image_url", "images"],  # URL, data: URI or local image
      "video_fields": ["video"],                      # URL, data: URI or local MP4
      "max_video_bytes": 15728640,
      "numeric_fields": ["seconds"],                  # number or numeric string; sent as a string
      "unsaid": ["..."]                               # what the page leaves open (docs/reference.md)
    }

A model file may share a family file: a top-level `"$ref": "families/<family>.schema.json"`
(relative to the model file) brings in the family's rules, and the model file's own keys are
laid over them: `properties`, `$defs`, `dependentRequired` and `x-octobatch` merge by name (the
model's entry wins), `required` and `allOf` are joined, any other key is the model's. The
merged schema is what validates jobs, renders docs/reference.md and is copied into a
project-local editor schema.

Models come from the shipped `schemas/models/` and from project folders (`settings.models_dir`
of a manifest, `OCTOBATCH_MODELS_PATH`): a project may add models the release does not ship,
never redefine a shipped one. Nothing here names a model.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator

from octobatch.errors import OctobatchError
from octobatch.inputs import read_input
from octobatch.jobs import ApiRequest, FilePart, JobSpec
from octobatch.schemas import default_schema_dir, read_schema

SCHEMA_SUFFIX = ".schema.json"
MODELS_PATH_ENV = "OCTOBATCH_MODELS_PATH"  # project model folders, os.pathsep-separated
DEFAULT_PROVIDER = "octopusx"
RefKind = Literal["image", "video"]
_MERGED_BY_NAME = ("properties", "$defs", "dependentRequired", "x-octobatch")
_JOINED = ("required", "allOf")
_DECLARATION_KEYS = frozenset({
    "source", "transport", "provider", "file_fields", "image_fields", "video_fields",
    "max_video_bytes", "numeric_fields", "unsaid", "seconds_field",
})


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
    schema: Mapping[str, Any]  # the merged schema (family laid under the model file)
    field_files: Mapping[str, Path]  # the file that defines each field (model or family)
    source: str | None = None  # the provider page the rules were taken from
    provider: str = DEFAULT_PROVIDER
    unsaid: tuple[str, ...] = ()
    shipped: bool = True  # False: from a project's model folder
    # Where the video's length is, as a dotted path (`duration`, `metadata.duration`): plan
    # totals and per-second prices read it.
    seconds_field: str = "seconds"


def load_models(schema_dir: Path | None = None, extra_dirs: Sequence[Path] = ()
                ) -> dict[str, Model]:
    """Every model by name: `<schema_dir>/models/` (default: shipped) plus project folders."""
    models = dict(_load_models(schema_dir or default_schema_dir()))
    for folder in extra_dirs:
        for name, model in _load_folder(Path(os.path.abspath(folder)), shipped=False).items():
            clash = models.get(name)
            if clash is not None:
                where = "ships with octobatch" if clash.shipped else f"is in {clash.schema_path}"
                raise OctobatchError(
                    f"{model.schema_path}: model '{name}' {where} already; "
                    "rename the project's model file or remove it")
            models[name] = model
    for model in models.values():
        if not model.shipped:
            _PROJECT_MODELS.setdefault(model.name, model)
    return models


def known_models(schema_dir: Path | None = None, extra_dirs: Sequence[Path] = ()) -> list[str]:
    return sorted(load_models(schema_dir, extra_dirs))


def env_model_dirs(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The project model folders named by `OCTOBATCH_MODELS_PATH` (empty entries ignored)."""
    value = (os.environ if environ is None else environ).get(MODELS_PATH_ENV, "")
    return tuple(Path(part) for part in value.split(os.pathsep) if part.strip())


def project_model_dirs(manifest: Path, models_dir: object,
                       environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """A manifest's model folders: its `settings.models_dir`, then OCTOBATCH_MODELS_PATH."""
    own = (manifest.parent / models_dir,) if isinstance(models_dir, str) else ()
    return (*own, *env_model_dirs(environ))


def manifest_models(schema_dir: Path | None, manifest: Path, models_dir: object,
                    environ: Mapping[str, str] | None = None) -> dict[str, Model]:
    """The models a manifest may use: shipped, plus its project model folders."""
    return load_models(schema_dir, project_model_dirs(manifest, models_dir, environ))


# Project models loaded in this process, so that a request can be built from a job alone.
_PROJECT_MODELS: dict[str, Model] = {}


def project_transports() -> dict[str, str]:
    """Project models loaded in this process -> their transport (for the built-in simulator)."""
    return {name: model.transport for name, model in _PROJECT_MODELS.items()}


def find_model(name: str, schema_dir: Path | None = None) -> Model:
    """The model a job names: shipped, or from a project folder loaded earlier."""
    model = _load_models(schema_dir or default_schema_dir()).get(name) or _PROJECT_MODELS.get(name)
    if model is None:
        raise OctobatchError(f"unknown model '{name}'; load its manifest first")
    return model


@functools.cache
def _load_models(schema_dir: Path) -> dict[str, Model]:
    models_dir = schema_dir / "models"
    models = _load_folder(models_dir, shipped=True)
    if not models:
        raise OctobatchError(f"{models_dir}: no model schemas found; reinstall octobatch")
    return models


@functools.cache
def _load_folder(folder: Path, *, shipped: bool) -> dict[str, Model]:
    if not folder.is_dir():
        raise OctobatchError(f"{folder}: no such models folder")
    models = {}
    for path in sorted(folder.glob("*" + SCHEMA_SUFFIX)):
        model = _model_from_schema(path.name.removesuffix(SCHEMA_SUFFIX), path, shipped)
        models[model.name] = model
    return models


def merged_schema(path: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """A model file with its family laid under it, and the file that defines each property."""
    return _merged(path, (), path.parent)


def _merged(path: Path, seen: tuple[Path, ...], root: Path
            ) -> tuple[dict[str, Any], dict[str, Path]]:
    own = read_schema(path)
    ref = own.get("$ref")
    origins = {name: path for name in own.get("properties", {})}
    if not isinstance(ref, str) or ref.startswith("#"):
        return dict(own), origins
    family = Path(os.path.normpath(path.parent / ref.partition("#")[0]))
    if not family.resolve().is_relative_to(root.resolve()):
        raise OctobatchError(f"{path}: $ref '{ref}' must name a family file inside {root}")
    if family in seen or len(seen) > 8:
        raise OctobatchError(f"{path}: $ref '{ref}' makes a cycle of family files")
    if not family.is_file():
        raise OctobatchError(f"{path}: $ref '{ref}': no such family file ({family})")
    base, base_origins = _merged(family, (*seen, path), root)
    merged = dict(base)
    for key, value in own.items():
        if key == "$ref":
            continue
        if key in _MERGED_BY_NAME and isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = {**base[key], **value}
        elif key in _JOINED and isinstance(value, list) and isinstance(base.get(key), list):
            merged[key] = list(dict.fromkeys(
                json.dumps(v, sort_keys=True) for v in (*base[key], *value)))
            merged[key] = [json.loads(v) for v in merged[key]]
        else:
            merged[key] = value
    return merged, {**base_origins, **origins}


def _model_from_schema(name: str, path: Path, shipped: bool) -> Model:
    schema, field_files = merged_schema(path)
    declaration = schema.get("x-octobatch")
    properties = schema.get("properties", {})

    def bad(what: str) -> OctobatchError:
        return OctobatchError(f"{path}: x-octobatch: {what}")

    if not isinstance(declaration, dict):
        raise bad("missing; every model schema declares its transport")
    unknown = sorted(set(declaration) - _DECLARATION_KEYS)
    if unknown:
        raise bad(f"unknown key '{unknown[0]}'; known keys: {', '.join(sorted(_DECLARATION_KEYS))}")
    if not isinstance(properties, dict) or not isinstance(properties.get("model"), dict):
        raise OctobatchError(f"{path}: properties.model is missing; a model file says which "
                             "model it describes, e.g. \"model\": {\"const\": \"" + name + "\"}")
    if properties["model"].get("const", name) != name:
        raise OctobatchError(f"{path}: properties.model.const is "
                             f"{properties['model']['const']!r}; it must be the file's name "
                             f"{name!r}")
    transport = declaration.get("transport")
    if transport not in ("json", "multipart"):
        raise bad(f"transport must be 'json' or 'multipart', not {transport!r}")
    file_fields: dict[str, FileField] = {}
    for field_name in _names(declaration, "image_fields", bad):
        file_fields[field_name] = FileField("image", local_only=False)
    for field_name in _names(declaration, "video_fields", bad):
        file_fields[field_name] = FileField("video", local_only=False)
    parts = declaration.get("file_fields", {})
    if not isinstance(parts, dict):
        raise bad("file_fields must map field names to 'image' or 'video'")
    for field_name, kind in parts.items():
        if kind not in ("image", "video"):
            raise bad(f"file_fields.{field_name} must be 'image' or 'video', not {kind!r}")
        file_fields[field_name] = FileField(kind, local_only=True)
    numeric = frozenset(_names(declaration, "numeric_fields", bad))
    for field_name in (*file_fields, *numeric):
        if field_name not in properties:
            raise bad(f"declares '{field_name}', which is not among the schema's properties")
    if transport == "json" and any(f.local_only for f in file_fields.values()):
        raise bad("file_fields need the multipart transport")
    for key in ("source", "provider", "seconds_field"):
        if key in declaration and not (isinstance(declaration[key], str) and declaration[key]):
            raise bad(f"{key} must be a non-empty string")
    max_video = declaration.get("max_video_bytes")
    if max_video is not None and (isinstance(max_video, bool) or not isinstance(max_video, int)
                                  or max_video <= 0):
        raise bad("max_video_bytes must be a positive whole number of bytes")
    _check_refs(schema, schema, path)
    return Model(
        name=name,
        transport=transport,
        fields=tuple(k for k in properties if k != "model"),
        file_fields=file_fields,
        numeric_fields=numeric,
        max_video_bytes=max_video,
        defaults={
            k: v["default"]
            for k, v in properties.items()
            if isinstance(v, dict) and "default" in v
        },
        validator=Draft202012Validator(schema),
        schema_path=path,
        schema=schema,
        field_files=field_files,
        source=declaration.get("source"),
        provider=declaration.get("provider", DEFAULT_PROVIDER),
        unsaid=tuple(_names(declaration, "unsaid", bad)),
        shipped=shipped,
        seconds_field=declaration.get("seconds_field", "seconds"),
    )


def _check_refs(node: Any, root: Mapping[str, Any], path: Path) -> None:
    """Every `$ref` inside a merged model is local and resolves (nothing is fetched)."""
    if isinstance(node, list):
        for item in node:
            _check_refs(item, root, path)
        return
    if not isinstance(node, dict):
        return
    if "$id" in node or "$dynamicRef" in node:
        raise OctobatchError(f"{path}: $id and $dynamicRef are not supported in model files")
    ref = node.get("$ref")
    if ref is not None:
        target: Any = root
        parts = ref[2:].split("/") if isinstance(ref, str) and ref.startswith("#/") else None
        for part in parts or []:
            target = target.get(part) if isinstance(target, dict) else None
        if parts is None or target is None:
            raise OctobatchError(
                f"{path}: $ref {ref!r} does not resolve; inside a model only local references "
                "(#/$defs/...) are allowed, and a family file is named by the top-level $ref")
    for key, value in node.items():
        if key not in ("const", "enum", "default", "examples"):
            _check_refs(value, root, path)


def _names(declaration: Mapping[str, Any], key: str, bad: Any) -> Iterable[str]:
    value = declaration.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad(f"{key} must be a list of strings")
    return value


def build_request(job: JobSpec, *, schema_dir: Path | None = None) -> ApiRequest:
    """The body of `POST /v1/videos` for `job`, reading its local files now.

    Raises InputFileError when a local file is gone or changed since the manifest was loaded.

    Multipart: every local file becomes a file part named after its field (a list field sends
    one part per file, the name repeated); every other value is a text part. JSON: local files
    are inlined as data: URIs; nested mappings are sent as they were written.
    """
    model = find_model(job.model, schema_dir)
    local = {f.field: f for f in job.files}
    if model.transport == "multipart":
        form = {"model": job.model}
        for key, value in job.fields.items():
            if isinstance(value, list):
                if any(f"{key}[{i}]" not in local for i in range(len(value))):
                    # No page documents a repeated text part; lists go as repeated files.
                    raise OctobatchError(f"job '{job.id}': {key}: {model.name} takes a list "
                                         "here only as local files (multipart file parts)")
            elif key not in local:
                form[key] = _form_text(value)
        parts = tuple(
            FilePart(field=_base_field(f.field), data=read_input(f), filename=f.path.name,
                     content_type=f.media_type)
            for f in job.files
        )
        return ApiRequest(transport="multipart", form=form, files=parts)

    def inline(label: str, value: Any) -> Any:
        file = local.get(label)
        return _data_uri(read_input(file), file.media_type) if file else value

    body: dict[str, Any] = {"model": job.model}
    for key, value in job.fields.items():
        if isinstance(value, list):
            body[key] = [inline(f"{key}[{i}]", item) for i, item in enumerate(value)]
        else:
            body[key] = inline(key, value)
    return ApiRequest(transport="json", json=body)


def _base_field(label: str) -> str:
    """`input_reference[1]` -> `input_reference`: the multipart part name of a list item."""
    return label.partition("[")[0]


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
