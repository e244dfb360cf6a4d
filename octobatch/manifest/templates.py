"""`{name}` templates in a job's id and prompt, filled from its matrix (or rows) variables."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from octobatch.jobs import Position
from octobatch.manifest.yamlpos import DocPath
from octobatch.schemas import did_you_mean, kind

# `{name}` is a variable; `{{` and `}}` are literal braces.
_TEMPLATE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Variable:
    """A value that fills `{name}` (or sets an API field), and where it was written."""

    value: Any
    path: DocPath  # where the value was written in the manifest (its matrix entry)
    place: Position | None = None  # for a rows cell: where it is in the rows file
    key_place: Position | None = None  # for a rows cell: its column's name in the header

    @property
    def at(self) -> DocPath | Position:
        """Where the value was written."""
        return self.place or self.path

    @property
    def key_at(self) -> DocPath | Position:
        """Where the value's name was written (the matrix key, the column header)."""
        return self.key_place or self.path[:-1]


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    hint: str | None = None
    variable: Variable | None = None  # the value at fault; None: the template itself


def render(
    template: str,
    variables: Mapping[str, Variable],
    used: set[str],
    clean: Callable[[str], str] = str,
    defined_by: str = "the matrix",
) -> tuple[str, list[TemplateProblem]]:
    """Fill `{name}` from `variables`, adding each name used to `used`.

    `clean` adapts each value to where it goes (ids cannot hold the ':' of "16:9").
    """
    if "{" not in template and "}" not in template:
        return template, []
    found: list[TemplateProblem] = []

    def substitute(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if name is None:
            return token[0]  # `{{` or `}}`
        variable = variables.get(name)
        if variable is None:
            hint = did_you_mean(name, variables) or (
                f"{defined_by} define{'s' if defined_by == 'the matrix' else ''} "
                f"{', '.join(variables)}" if variables else "this job has no matrix"
            )
            found.append(TemplateProblem(f"unknown template variable {{{name}}}",
                                         f"{hint}; write {{{{ and }}}} for literal braces"))
            return token
        used.add(name)
        value = variable.value
        if isinstance(value, bool):
            return clean("true" if value else "false")
        if isinstance(value, (str, int, float)):
            return clean(str(value))
        found.append(TemplateProblem(f"{{{name}}} needs text or a number, not {kind(value)}",
                                     variable=variable))
        return token

    return _TEMPLATE.sub(substitute, template), found
