"""The manifest field reference (docs/reference.md), rendered from the JSON Schemas.

The schemas are the single source of truth for what a manifest may say; rendering the
reference from them means the documentation cannot drift from what `validate` enforces
(tests/test_docs.py compares the committed file with this output).

    python -m octobatch.reference > docs/reference.md
    python -m octobatch.reference my-models/ > my-reference.md   # with a project's own models
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from octobatch.errors import OctobatchError
from octobatch.models import env_model_dirs, load_models
from octobatch.schemas import default_schema_dir

Schema = Mapping[str, Any]



_INTRO = """# Manifest reference

<!-- Generated from schemas/ by `python -m octobatch.reference > docs/reference.md`; \
do not edit by hand. -->

Every field a manifest may use, as `octobatch validate` checks it. Job fields are the API's own
field names. Put this line first in a manifest for completion and checking in your editor
(see [editors.md](editors.md)):

```yaml
# yaml-language-server: $schema=../schemas/manifest.schema.json
```
"""


def render_reference(schemas: Path | None = None, extra_dirs: Sequence[Path] = ()) -> str:
    """The whole reference as Markdown: the document, then every model the loader knows."""
    root = schemas or default_schema_dir()
    manifest = _read(root / "manifest.schema.json")
    defs = manifest.get("$defs", {})
    models = load_models(root, extra_dirs)
    out = [
        _INTRO,
        "## Document",
        "",
        *_table(manifest, manifest),
        "",
        "### settings",
        "",
        _text(defs["settings"].get("description", "")),
        "",
        *_table(defs["settings"], defs["settings"]),
        "",
        "### jobs[]",
        "",
        _text(defs["job"].get("description", ""))
        + " Every job also takes the fields of its model (below); `defaults` takes the same "
        "fields except `id` and `matrix`.",
        "",
        *_table(
            {"properties": {**defs["job"]["properties"], **defs["jobFields"]["properties"]},
             "required": ["prompt"]},
            defs,
        ),
        "",
        "`model` and `prompt` are required for every job after `defaults` are merged in.",
        "",
        "## Models",
        "",
        "Known models: " + ", ".join(f"`{m}`" for m in sorted(models)) + ".",
        "",
        _MODELS_NOTE,
    ]
    for name in sorted(models):
        model = models[name]
        schema = model.schema
        out += ["", f"### {name}", "", _text(schema.get("description", ""))]
        if model.source:
            out += ["", f"Source: <{model.source}>"]
        out += ["", *_table(schema, schema, skip=("model",))]
        rules = list(_rules(schema))
        if rules:
            out += ["", "Rules:", "", *(f"- {rule}" for rule in rules)]
        if model.unsaid:
            out += ["", "The page leaves unsaid (octobatch does not guess; these are accepted "
                    "as written or left to the provider):", "",
                    *(f"- {_text(item)}" for item in model.unsaid)]
    return "\n".join(out).rstrip() + "\n"


_MODELS_NOTE = """\
Each model is one file in `schemas/models/` (models of one family share a file in
`schemas/models/families/`), its rules taken from the provider page named under it. A project
can add models of its own: model files in a folder named by the manifest's `settings.models_dir`
(relative to the manifest) or by `OCTOBATCH_MODELS_PATH` (folders separated by `:`) are loaded
like these (`python -m octobatch.reference FOLDER` documents them, `octobatch schema MANIFEST`
writes an editor schema that knows them). The built-in
simulator (`octobatch simulate`, `run --simulate`) checks requests with its own rules, written
separately from the same pages and not read from these files, so a mistake in a model file
shows up as a refused request rather than being repeated by the simulator."""


def _read(path: Path) -> Schema:
    data: Schema = json.loads(path.read_text(encoding="utf-8"))
    return data


def _table(schema: Schema, root: Schema, skip: Sequence[str] = ()) -> list[str]:
    required = set(schema.get("required", ()))
    conditional = {name for rule in schema.get("allOf", ()) for name in _then_required(rule)}
    rows = [
        "| field | type | values | default | required | notes |",
        "|---|---|---|---|---|---|",
    ]
    for name, prop in schema.get("properties", {}).items():
        if name in skip:
            continue
        prop = _resolve(prop, root)
        need = "yes" if name in required else "see rules" if name in conditional else "no"
        cells = [
            f"`{name}`",
            _type(prop, root),
            _values(prop, root),
            _code(prop["default"]) if "default" in prop else "",
            need,
            _text(prop.get("description") or prop.get("x-octobatch-message", "")),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _resolve(prop: Schema, root: Schema) -> Schema:
    """Merge a local `$ref` (`#/$defs/x`) into the property; sibling keys win."""
    ref = prop.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return prop
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    merged = {**_resolve(target, root), **prop}
    merged.pop("$ref")
    return merged


def _type(prop: Schema, root: Schema) -> str:
    if prop.get("not") == {}:
        return "not allowed"
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items", {})
        ref = items.get("$ref", "")
        if ref.startswith("#/$defs/"):  # a named structure, e.g. `job`: say its name
            return f"list of {ref.rsplit('/', 1)[-1]}s"
        return f"list of {_type(_resolve(items, root), root) or 'values'}"
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind is None and "const" in prop:
        return type(prop["const"]).__name__.replace("int", "integer").replace("str", "string")
    if kind is None and ("properties" in prop or "allOf" in prop):
        return "object"
    return str(kind or "")


def _values(prop: Schema, root: Schema) -> str:
    if "const" in prop:
        return _code(prop["const"])
    if "enum" in prop:
        # `seconds` accepts 5 and "5" alike; list each value once.
        unique = dict.fromkeys(str(v) for v in prop["enum"])
        return ", ".join(f"`{v}`" for v in unique)
    parts = []
    if "minimum" in prop and "maximum" in prop:
        parts.append(f"{prop['minimum']} to {prop['maximum']}")
    elif "minimum" in prop:
        parts.append(f"at least {prop['minimum']}")
    elif "maximum" in prop:
        parts.append(f"at most {prop['maximum']}")
    if "exclusiveMinimum" in prop:
        parts.append(f"> {prop['exclusiveMinimum']}")
    if "minItems" in prop or "maxItems" in prop:
        parts.append(f"{prop.get('minItems', 0)} to {prop.get('maxItems', 'any')} items")
    if prop.get("type") == "array" and "items" in prop:
        inner = _values(_resolve(prop["items"], root), root)
        if inner:
            parts.append(f"each {inner}")
    return "; ".join(parts)


def _then_required(rule: Schema) -> Iterable[str]:
    then = rule.get("then")
    return then.get("required", ()) if isinstance(then, Mapping) else ()


def _rules(schema: Schema) -> Iterable[str]:
    """The cross-field rules, in words: dependencies and conditional requirements."""
    for field, needs in schema.get("dependentRequired", {}).items():
        yield f"`{field}` needs " + " and ".join(f"`{n}`" for n in needs) + "."
    for rule in schema.get("allOf", ()):
        names = list(_then_required(rule))
        if names:
            message = rule["then"].get("x-octobatch-message", "required")
            yield " and ".join(f"`{n}`" for n in names) + f": {_text(message)}."
        elif "x-octobatch-message" in rule:
            message = _text(rule["x-octobatch-message"]).rstrip(".")
            yield message[:1].upper() + message[1:] + "."


def _code(value: Any) -> str:
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"


def _text(text: str) -> str:
    """Plain text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the reference; model folders given as arguments or in OCTOBATCH_MODELS_PATH are
    documented beside the shipped models (a project's own reference)."""
    folders = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        text = render_reference(extra_dirs=[*folders, *env_model_dirs()])
    except OctobatchError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
