"""Find and read the JSON Schemas, and turn validation errors into messages users can act on.

The schemas live at the top of a source checkout (`schemas/`, where editors point at them)
and inside the installed package (`octobatch/schemas`, force-included into the wheel).
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from octobatch.errors import OctobatchError

MESSAGE_KEY = "x-octobatch-message"  # a schema's own wording for any error it raises


@functools.cache
def default_schema_dir() -> Path:
    """`octobatch/schemas` of an installed package, else `schemas/` of the source checkout.

    Cached: the installation does not move while a process runs, and the engine asks once per
    job (resolving the path costs a stat per folder of it). A missing one is not cached.
    """
    packaged = importlib.resources.files("octobatch") / "schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if (checkout / "manifest.schema.json").is_file():
        return checkout
    raise OctobatchError(
        "the schema files are missing from this installation (octobatch/schemas); "
        "reinstall octobatch"
    )


@functools.cache
def read_schema(path: Path) -> dict[str, Any]:
    """Read and check one schema file (cached: schemas are read once per process)."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
    except (OSError, ValueError) as exc:
        raise OctobatchError(f"{path}: cannot read schema: {exc}") from None
    except SchemaError as exc:
        raise OctobatchError(f"{path}: invalid schema: {exc.message}") from None
    if not isinstance(schema, dict):
        raise OctobatchError(f"{path}: a schema must be a JSON object")
    return schema


@functools.cache
def document_validator(schema_dir: Path) -> Draft202012Validator:
    """The validator for a manifest's shape (version, defaults, settings, output_dir, jobs).

    The editor schema also checks each job's fields against its model in place; the loader
    checks them later, against the model's own schema after defaults and matrix expansion
    (a job may take its model or prompt from defaults), so that part is left out here.
    """
    schema = json.loads(json.dumps(read_schema(schema_dir / "manifest.schema.json")))
    schema["$defs"]["jobFields"] = {"type": "object"}
    return Draft202012Validator(schema)


class FastCheck:
    """A quick yes/no answer to "is this instance valid?", for manifests of 10,000 jobs.

    Full validation costs about a millisecond per job; but jobs share most of their values
    and all of their shapes. So an object is checked as (a) the rules that only look at which
    keys are present, cached by key set, and (b) each property value on its own, cached by
    value; arrays likewise per item. Any part of a schema that reads values in some other way
    is validated whole (still cached by value). Only the verdict comes from here: the messages
    for an invalid instance always come from the full validator.
    """

    MAX_CACHED = 200_000

    def __init__(self, validator: Draft202012Validator, schema: Any = None) -> None:
        self.root = validator
        self.schema = self._follow(validator.schema if schema is None else schema)
        self.kind = self._kind(self.schema)
        self.parts: dict[str, FastCheck] = {}
        self.items: FastCheck | None = None
        self.shapes: dict[Any, bool] = {}
        self.values: dict[Any, bool] = {}
        if self.kind == "object":
            props = self.schema.get("properties", {})
            self.parts = {name: FastCheck(validator, sub) for name, sub in props.items()}
            shape = {**self.schema, "properties": dict.fromkeys(props, True)}
        elif self.kind == "array":
            self.items = FastCheck(validator, self.schema["items"])
            shape = {**self.schema, "items": True}
        else:
            shape = self.schema
        self.shape = validator.evolve(schema=shape)

    def is_valid(self, instance: Any) -> bool:
        if self.kind == "object" and isinstance(instance, dict):
            keys = frozenset(instance)
            if not self._cached(self.shapes, keys, lambda: dict.fromkeys(instance)):
                return False
            for name, value in instance.items():
                part = self.parts.get(name)
                if part is not None and not part.is_valid(value):
                    return False
            return True
        if self.kind == "array" and isinstance(instance, list):
            if not self._cached(self.shapes, len(instance), lambda: [None] * len(instance)):
                return False
            assert self.items is not None
            return all(self.items.is_valid(item) for item in instance)
        return self._cached(self.values, _freeze(instance), lambda: instance)

    def _cached(self, cache: dict[Any, bool], key: Any, instance: Callable[[], Any]) -> bool:
        if key is None:
            return bool(self.shape.is_valid(instance()))
        verdict = cache.get(key)
        if verdict is None:
            if len(cache) >= self.MAX_CACHED:
                cache.clear()
            verdict = cache[key] = self.shape.is_valid(instance())
        return verdict

    def _follow(self, schema: Any) -> Any:
        """A schema that is only a local `$ref` (plus annotations) -> the schema it names."""
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and not (
            set(schema) - {"$ref", *_ANNOTATIONS}
        ):
            schema = self._resolve(schema["$ref"])
        return schema

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            return None
        node: Any = self.root.schema
        for part in ref[2:].split("/"):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def _kind(self, schema: Any) -> str:
        if not isinstance(schema, dict):
            return "whole"
        own = set(schema) - _ANNOTATIONS - {"$defs", "$schema"}
        if schema.get("type") == "array" and "items" in schema and own <= _ARRAY_SHAPE:
            return "array"
        if "properties" in schema and self._presence_only(schema, top=True):
            return "object"
        return "whole"

    def _presence_only(self, schema: Any, *, top: bool = False) -> bool:
        """Whether the rules of `schema` (its property schemas aside) only look at key names."""
        if isinstance(schema, bool):
            return True
        if not isinstance(schema, dict):
            return False
        for key, value in schema.items():
            if key in _ANNOTATIONS or key in _NAME_RULES or key in ("$defs", "$schema"):
                continue
            if key == "type":
                if value != "object":
                    return False
            elif key == "properties" and top:
                continue
            elif key == "additionalProperties":
                if not isinstance(value, bool):
                    return False
            elif key == "propertyNames":
                continue  # applies to the names themselves
            elif key in ("allOf", "anyOf", "oneOf"):
                if not all(self._presence_only(sub) for sub in value):
                    return False
            elif key in ("not", "if", "then", "else"):
                if not self._presence_only(value):
                    return False
            elif key == "$ref":
                if not self._presence_only(self._resolve(value)):
                    return False
            else:
                return False
        return True


_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment",
                          MESSAGE_KEY, "x-octobatch"})
_NAME_RULES = frozenset({"required", "dependentRequired", "minProperties", "maxProperties"})
_ARRAY_SHAPE = frozenset({"type", "items", "minItems", "maxItems"})


def _freeze(value: Any) -> Any:
    """A hashable key that tells apart values JSON Schema tells apart (1, 1.5, True, "1").

    None for values that cannot be keyed (whatever else YAML may produce): not cached.
    """
    if isinstance(value, list):
        items = tuple(_freeze(v) for v in value)
        return None if None in items else ("list", items)
    if isinstance(value, dict):
        pairs = tuple(sorted((k, _freeze(v)) for k, v in value.items()))
        return None if any(v is None for _, v in pairs) else ("dict", pairs)
    if value is None or isinstance(value, (str, int, float, bool)):
        return (type(value).__name__, value)
    return None


@dataclass(frozen=True)
class Problem:
    """One validation error, located by its path inside the validated instance."""

    path: tuple[Hashable, ...]
    message: str
    hint: str | None = None
    at_key: bool = False  # point at the key (an unknown field) rather than its value


def problems(validator: Draft202012Validator, instance: Any) -> list[Problem]:
    """Every error of `instance`, worded for users, without duplicates, in document order."""
    if _fast_check(validator).is_valid(instance):
        return []
    found: dict[Problem, None] = {}
    for error in validator.iter_errors(instance):
        for problem in _describe(error):
            found.setdefault(problem)
    return list(found)


_FAST_CHECKS: dict[int, tuple[Draft202012Validator, FastCheck]] = {}


def _fast_check(validator: Draft202012Validator) -> FastCheck:
    # Validators are not hashable; keeping the validator alive keeps its id from being reused.
    entry = _FAST_CHECKS.get(id(validator))
    if entry is None:
        entry = _FAST_CHECKS[id(validator)] = (validator, FastCheck(validator))
    return entry[1]


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def field_label(path: Iterable[Hashable]) -> str:
    """`("images", 2)` -> `images[2]`, `("settings", "timeout")` -> `settings.timeout`."""
    label = ""
    for part in path:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label


def show(value: Any) -> str:
    """A short rendering of a user's value for a message (never a huge structure)."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return kind(value)


_TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "array": "a list",
    "object": "a mapping",
    "boolean": "true or false",
    "null": "null",
}


def kind(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"  # e.g. a YAML timestamp


def _describe(error: ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    own = schema.get(MESSAGE_KEY)
    value = error.instance
    rule = error.validator

    if "propertyNames" in error.relative_schema_path:  # the instance is the key itself
        return [Problem((*path, value), own or error.message, at_key=True)]
    if rule == "additionalProperties" and isinstance(value, Mapping):
        known = list(schema.get("properties", {}))
        return [
            Problem(
                (*path, name),
                "unknown field",
                did_you_mean(name, known) or "known fields: " + ", ".join(known),
                at_key=True,
            )
            for name in value
            if name not in known
        ]
    if rule == "required" and isinstance(value, Mapping):
        return [
            Problem((*path, name), own or "missing required field")
            for name in error.validator_value
            if name not in value
        ]
    if rule == "dependentRequired" and isinstance(value, Mapping):
        return [
            Problem((*path, name), f"needs {need} as well")
            for name, needs in error.validator_value.items()
            if name in value
            for need in needs
            if need not in value
        ]
    if own:
        return [Problem(path, f"{own}, got {show(value)}" if _has_value(rule) else own)]
    return [Problem(path, _generic(rule, error.validator_value, value, error.message))]


def _has_value(rule: str) -> bool:
    return rule not in ("not", "anyOf", "oneOf", "allOf", "if", "then")


def _generic(rule: str, expected: Any, value: Any, fallback: str) -> str:
    if rule == "enum":
        choices = ", ".join(dict.fromkeys(repr(str(c)) for c in expected))
        return f"{show(str(value)) if _scalar(value) else show(value)} is not one of {choices}"
    if rule == "const":
        return f"must be {expected!r}, got {show(value)}"
    if rule == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        return f"must be {wanted}, not {kind(value)}"
    if rule == "minimum":
        return f"must be at least {expected}, got {show(value)}"
    if rule == "maximum":
        return f"must be at most {expected}, got {show(value)}"
    if rule == "exclusiveMinimum":
        return f"must be greater than {expected}, got {show(value)}"
    if rule == "maxItems":
        return f"has {len(value)} entries; at most {expected} allowed"
    if rule == "minItems":
        return f"has {len(value)} entries; at least {expected} needed"
    if rule in ("minLength", "minProperties"):
        return "must not be empty"
    if rule == "pattern":
        return f"{show(value)} does not match {expected}"
    return fallback


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
