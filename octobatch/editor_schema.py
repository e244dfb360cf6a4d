"""The editor schema (`schemas/manifest.schema.json`): its per-model part, generated.

The document part of the file (version, settings, defaults, jobs) is written by hand; the part
that knows the models, `$defs.jobFields` (the model list and one branch per model that points
each field at the model file that defines it), is generated here from the model files, so a
new model is one file (tests/test_schemas.py fails when the committed file has drifted):

    python -m octobatch.editor_schema > schemas/manifest.schema.json

`write_project_schema` writes the same for a project that adds its own models: a folder with
`manifest.schema.json` and every model (shipped and project) as one self-contained file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from octobatch.fsutil import atomic_write, make_dirs
from octobatch.models import Model, load_models
from octobatch.schemas import default_schema_dir, read_schema

EDITOR_SCHEMA = "manifest.schema.json"


def job_fields(models: Mapping[str, Model], field_ref: Any) -> dict[str, Any]:
    """`$defs.jobFields`: the model enum and, per model, where each of its fields is defined.

    `field_ref(model, field)` gives the `$ref` of one field, relative to the editor schema.
    """
    names = sorted(models)
    return {
        "type": "object",
        "properties": {
            "model": {"type": "string", "enum": names, "description": "The video model."},
            "prompt": {"type": "string", "description": "What the video shows."},
        },
        "allOf": [
            {
                "if": {"properties": {"model": {"const": name}}, "required": ["model"]},
                "then": {"properties": {
                    field: {"$ref": field_ref(models[name], field)}
                    for field in models[name].fields
                }},
            }
            for name in names
        ],
    }


def render_editor_schema(schema_dir: Path | None = None) -> str:
    """The shipped editor schema: the committed document part plus the generated model part."""
    root = schema_dir or default_schema_dir()
    models = load_models(root)

    def field_ref(model: Model, field: str) -> str:
        where = model.field_files[field].relative_to(root).as_posix()
        return f"{where}#/properties/{field}"

    return _render(read_schema(root / EDITOR_SCHEMA), job_fields(models, field_ref))


def write_project_schema(out_dir: Path, extra_dirs: tuple[Path, ...],
                         schema_dir: Path | None = None, *, project: Path | None = None) -> Path:
    """Write `<out_dir>/manifest.schema.json` and `<out_dir>/models/*` for a project.

    Each model file is written merged (family laid under it), so the folder stands alone:
    point a manifest's `# yaml-language-server: $schema=` comment at its manifest.schema.json.
    No folder below `project` (default: the git work tree of `out_dir`) is followed through a
    symlink, nor any file written through one (raises OSError, `SymlinkRefused` for a link).
    """
    root = schema_dir or default_schema_dir()
    models = load_models(root, extra_dirs)
    make_dirs(out_dir / "models", root=project)

    def write(path: Path, text: str) -> None:
        atomic_write(path, text.encode("utf-8"), root=project)

    for model in models.values():
        write(out_dir / "models" / f"{model.name}.schema.json",
              json.dumps(model.schema, indent=2, ensure_ascii=False) + "\n")

    def field_ref(model: Model, field: str) -> str:
        return f"models/{model.name}.schema.json#/properties/{field}"

    target = out_dir / EDITOR_SCHEMA
    write(target, _render(read_schema(root / EDITOR_SCHEMA), job_fields(models, field_ref)))
    return target


def _render(document: Mapping[str, Any], fields: dict[str, Any]) -> str:
    schema = json.loads(json.dumps(document))
    schema.setdefault("$defs", {})["jobFields"] = fields
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    sys.stdout.write(render_editor_schema())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
