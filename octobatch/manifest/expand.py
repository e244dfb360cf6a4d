"""One manifest entry -> the drafts of its jobs: defaults merged under it, its matrix expanded.

A draft is a job before it is checked: its fields, where each of them was written (so that
any problem can be reported at its place), and the variables of its matrix combination.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from octobatch.jobs import Position
from octobatch.manifest.causes import closest
from octobatch.manifest.report import Reporter
from octobatch.manifest.rows import Row
from octobatch.manifest.templates import Variable
from octobatch.manifest.yamlpos import DocPath
from octobatch.models import Model
from octobatch.schemas import Problem, did_you_mean, field_label, problems

# Keys of a job entry that are not API fields (of these, defaults may hold only `takes`).
JOB_KEYS = ("id", "matrix", "rows", "takes")
_NUMERIC_TEXT = re.compile(r"\s*[0-9]{1,9}\s*")  # as the schemas' pattern; no huge ints


@dataclass(slots=True)
class Draft:
    """One job of an entry, before its fields are checked against its model."""

    where: DocPath  # the manifest entry
    label: str  # how messages name the job until its id is known
    raw_id: Any  # the entry's `id` (a template), if it has one
    fields: dict[str, Any]  # merged fields; `model` included until the model is resolved
    origins: dict[str, DocPath | Position]  # field -> where its value was written
    variables: dict[str, Variable]  # this combination of the matrix
    takes: int = 1  # generations of this one spec; not part of what identifies it
    rows: str | None = None  # the entry's rows file, if the job is one of its rows
    source: Position | None = None  # the row the job comes from
    id_at: Position | None = None  # the row's `id` cell: the job's id as written


def as_number(value: Any) -> Any:
    """A number or numeric string as an int, for range checks; anything else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        return int(value)
    return value


def expand_entry(index: int, raw: dict[str, Any], defaults: Defaults, reporter: Reporter,
                 rows: list[Row] | None = None) -> Iterator[Draft]:
    """The drafts of one manifest entry: one, or one per matrix combination (per row of its
    rows file, times the matrix)."""
    where: DocPath = ("jobs", index)
    takes = raw.get("takes", defaults.takes)
    raw_id = raw.get("id")
    label = raw_id if isinstance(raw_id, str) else f"#{index + 1}"
    own = {k: v for k, v in raw.items() if k not in JOB_KEYS}
    origins: dict[str, DocPath | Position] = {k: ("defaults", k) for k in defaults.values}
    origins.update({k: (*where, k) for k in own})
    base = {**defaults.values, **own}
    matrix: dict[str, list[Any]] = raw.get("matrix") or {}

    clashes = [key for key in matrix if key in own or key in JOB_KEYS]
    for key in clashes:
        message = (f"'{key}' cannot be a matrix key" if key in JOB_KEYS
                   else f"'{key}' is set both on the job and in its matrix")
        reporter.report((*where, "matrix", key), message, job=label, field=f"matrix.{key}",
                        hint=None if key in JOB_KEYS else "keep one of them", at_key=True)
    if rows is not None and not _columns_fit(rows, own, matrix, where, label, reporter):
        return
    if clashes:
        return

    axes = [
        [(key, Variable(value, (*where, "matrix", key, i))) for i, value in enumerate(values)]
        for key, values in matrix.items()
    ]
    rows_file = raw.get("rows") if rows is not None else None
    if rows is None:
        for combination in itertools.product(*axes):
            yield Draft(where, label, raw_id, dict(base), dict(origins), dict(combination), takes)
        return
    for row in rows:
        cells = dict(row.cells)
        id_cell = cells.pop("id", None)
        row_id = id_cell.value if id_cell else raw_id
        for combination in itertools.product(*axes):
            yield Draft(where, label, row_id, dict(base), dict(origins),
                        {**cells, **dict(combination)}, takes, rows_file, row.at,
                        id_cell.place if id_cell else None)


def _columns_fit(rows: list[Row], own: Mapping[str, Any], matrix: Mapping[str, Any],
                 where: DocPath, label: str, reporter: Reporter) -> bool:
    """Whether the rows' columns clash with nothing the entry sets itself (reported)."""
    columns: dict[str, Variable] = {}
    for row in rows:
        for name, cell in row.cells.items():
            columns.setdefault(name, cell)
    ok = True
    for name, cell in columns.items():
        if name in JOB_KEYS and name != "id":
            message = f"'{name}' cannot be a column"
        elif name in own or name in matrix:
            message = (f"column '{name}' is also set on the job"
                       + (" (in its matrix)" if name in matrix else ""))
        else:
            continue
        reporter.report(cell.key_at, message, job=label, field=name, hint="keep one of them")
        ok = False
    if "id" in columns and "id" in own:
        reporter.report((*where, "id"), "the rows have an id column and the job an id",
                        job=label, field="id", hint="keep one of them")
        ok = False
    return ok


def entry_size(raw: Mapping[str, Any], rows: list[Row] | None = None) -> int:
    """How many jobs an entry expands to, counted before any is built."""
    matrix = raw.get("matrix")
    count = len(rows) if rows is not None else 1
    if not isinstance(matrix, dict):
        return count
    return count * math.prod(len(v) if isinstance(v, list) else 1 for v in matrix.values())


class Defaults:
    """The manifest's `defaults`, and which of them each model takes.

    Defaults are shared by jobs of different models: a default the model has no such field
    for, or whose value the model does not accept (`seconds: 8` reaching a jimeng job), is
    left out and the model's own default applies. A default no job accepts is reported once,
    at the end.
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = {k: v for k, v in values.items() if k not in JOB_KEYS}
        takes = values.get("takes", 1)  # its type and range are the document schema's to check
        self.takes = takes if isinstance(takes, int) and not isinstance(takes, bool) else 1
        self._fits: dict[tuple[str, str], bool] = {}
        self._accepted: set[str] = set()
        self._rejections: dict[str, Problem] = {}
        self._misspelt: dict[str, str] | None = None

    def drop_unfit(self, model: Model, draft: Draft) -> None:
        """Remove from `draft` the defaults its model does not take."""
        for key, origin in list(draft.origins.items()):
            if (origin == ("defaults", key) and key in draft.fields
                    and not self.fits(model, key)):
                del draft.fields[key], draft.origins[key]

    def fits(self, model: Model, key: str) -> bool:
        cached = self._fits.get((model.name, key))
        if cached is not None:
            return cached
        fits = key in model.fields
        if fits:
            value = self.values[key]
            if key in model.numeric_fields:
                value = as_number(value)
            instance = {"model": model.name, "prompt": "-", key: value}
            rejected = [p for p in problems(model.validator, instance) if p.path[:1] == (key,)]
            fits = not rejected
            if rejected:
                self._rejections.setdefault(key, rejected[0])
        if fits:
            self._accepted.add(key)
        self._fits[(model.name, key)] = fits
        return fits

    def misspelt(self, models: Mapping[str, Model]) -> dict[str, str]:
        """Field -> the default that is no model's field but was probably meant to be it."""
        if self._misspelt is None:
            every_field = _every_field(models)
            self._misspelt = {}
            for key in self.values:
                meant = closest(key, every_field) if key not in every_field else None
                if meant is not None:
                    self._misspelt.setdefault(meant, key)
        return self._misspelt

    def check(self, models: Mapping[str, Model], reporter: Reporter) -> None:
        """Report defaults that are no model's field, and defaults no job could take."""
        every_field = _every_field(models)
        for key in self.values:
            if key not in every_field:
                reporter.report(("defaults", key), "unknown field", field=f"defaults.{key}",
                                hint=did_you_mean(key, every_field), at_key=True)
            elif key in self._rejections and key not in self._accepted:
                problem = self._rejections[key]
                reporter.report(("defaults", *problem.path), problem.message,
                                field=f"defaults.{field_label(problem.path)}",
                                hint="no job's model accepts this default")


def _every_field(models: Mapping[str, Model]) -> set[str]:
    return {"model", *(f for m in models.values() for f in m.fields)}
