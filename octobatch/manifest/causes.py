"""One mistake, one message: the model schema's problems for a job, reduced to their causes.

A JSON Schema reports every rule an instance breaks, so one slip can read as several: a
misspelt default (`aspect-ratio`) is an unknown field *and* leaves `aspect_ratio` missing;
`resolution: 720` is the wrong type *and* not one of the choices. Users fix causes, so only
the cause is reported; and hints name only what the model really allows.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from octobatch.models import Model
from octobatch.schemas import Problem

UNKNOWN_FIELD = "unknown field"
_ALLOWED: dict[tuple[str, int], tuple[str, ...]] = {}


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` is most likely a misspelling of, if any is close enough."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def allowed_fields(model: Model) -> tuple[str, ...]:
    """The model's fields a job may set: its properties except those it forbids (`"not": {}`,
    such as omni-fast's reference-video fields, kept only to word their own error)."""
    key = (model.name, id(model.schema))
    allowed = _ALLOWED.get(key)
    if allowed is None:
        properties = model.schema.get("properties", {})
        allowed = _ALLOWED[key] = tuple(
            name for name in ("model", *model.fields)
            if not _forbidden(_resolve(model.schema, properties.get(name)))
        )
    return allowed


def one_per_cause(found: Iterable[Problem], model: Model, fields: Collection[str],
                  misspelt: Mapping[str, str]) -> list[Problem]:
    """The problems worth reporting, each once, with hints that list only allowed fields.

    `misspelt` maps a field to the unknown key of the defaults that was probably meant to be
    it: the field's absence is that key's fault, reported at the key.
    """
    allowed = allowed_fields(model)
    problems = list(found)
    misspelt = dict(misspelt)
    for problem in problems:  # the job's own unknown keys
        if problem.message == UNKNOWN_FIELD and len(problem.path) == 1:
            meant = closest(str(problem.path[0]), allowed)
            if meant is not None:
                misspelt.setdefault(meant, str(problem.path[0]))
    with_choices = {p.path for p in problems if " is not one of " in p.message}
    kept: list[Problem] = []
    for problem in problems:
        path = problem.path
        head = path[0] if path else None
        if isinstance(head, str) and head not in fields and head in misspelt:
            continue  # missing only because its name was misspelt
        if path in with_choices and " is not one of " not in problem.message:
            continue  # `resolution: 720`: the choices say it all
        if problem.message == UNKNOWN_FIELD and len(path) == 1:
            problem = Problem(path, problem.message, _unknown_hint(str(head), allowed),
                              problem.at_key)
        kept.append(problem)
    return kept


def _unknown_hint(name: str, allowed: tuple[str, ...]) -> str:
    meant = closest(name, allowed)
    return f"did you mean '{meant}'?" if meant else "known fields: " + ", ".join(allowed)


def _forbidden(schema: Any) -> bool:
    return schema is False or (isinstance(schema, dict) and schema.get("not") == {})


def _resolve(root: Mapping[str, Any], schema: Any) -> Any:
    """A property schema that is a local `$ref` -> the schema it names."""
    for _ in range(8):
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        schema = node
    return schema
