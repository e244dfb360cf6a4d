"""Collecting a manifest's problems, each at the line and column where it was written."""

from __future__ import annotations

from typing import Any

from octobatch.errors import Diagnostic, ManifestError
from octobatch.jobs import Position
from octobatch.manifest.yamlpos import DocPath, SourceMap


class Reporter:
    """Every problem found in one manifest file, located through the document's source map.

    One diagnostic per place and message: a bad default or matrix value is reported once,
    not once per job it reaches.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.smap = SourceMap()
        self._found: dict[tuple[Any, ...], Diagnostic] = {}

    def __bool__(self) -> bool:
        return bool(self._found)

    def report(
        self,
        where: DocPath | Position,
        message: str,
        *,
        job: str | None = None,
        field: str | None = None,
        hint: str | None = None,
        at_key: bool = False,
    ) -> None:
        if isinstance(where, Position):  # a place in another file (a rows file)
            self.add(Diagnostic(where.file, where.line, where.column, message, job, field, hint))
            return
        mark = self.smap.key(where) if at_key else self.smap.value(where)
        self.add(Diagnostic(self.file, mark.line, mark.column, message, job, field, hint))

    def add(self, diagnostic: Diagnostic) -> None:
        """A problem located by other means (a line of a rows file)."""
        key = (diagnostic.file, diagnostic.line, diagnostic.column, diagnostic.field,
               diagnostic.message)
        self._found.setdefault(key, diagnostic)

    def position(self, where: DocPath) -> Position:
        mark = self.smap.value(where)
        return Position(self.file, mark.line, mark.column)

    def fatal(self, message: str, *, line: int = 0, column: int = 0, hint: str | None = None
              ) -> ManifestError:
        """A problem that stops the load at once (the file cannot be read as a manifest)."""
        return ManifestError([Diagnostic(self.file, line, column, message, hint=hint)])

    def error(self) -> ManifestError:
        """Every problem reported, in the order of the file (other files after it)."""
        return ManifestError(sorted(self._found.values(),
                                    key=lambda d: (d.file != self.file, d.file, d.line, d.column)))
