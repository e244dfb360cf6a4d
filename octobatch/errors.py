"""The exception tree and the one error boundary that turns errors into exit codes.

Every error a user can cause or meet carries a message that says what to do next. Only
`error_boundary` catches broadly; everything else lets unexpected errors propagate.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1  # some job failed or is unfinished; also unexpected internal errors
EXIT_INVALID = 2  # invalid manifest or usage
EXIT_INTERRUPTED = 130


class OctobatchError(Exception):
    """Base of every error octobatch reports to users as a message, not a traceback."""

    exit_code: int = EXIT_FAILED


class UsageError(OctobatchError):
    """Wrong command line, missing key, unreadable path: the user must change the call."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a manifest, pointing at the exact place to fix.

    Rendered as `file:line:col: job 'id': field: message` (+ `; hint` when one helps). `job`
    and `field` are omitted for document-level problems (bad YAML, unknown top-level key).
    """

    file: str
    line: int  # 1-based; 0 when unknown (e.g. file unreadable)
    column: int  # 1-based; 0 when unknown
    message: str
    job: str | None = None
    field: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line <= 0 else f"{self.file}:{self.line}:{max(self.column, 1)}"
        parts = [where]
        if self.job is not None:
            parts.append(f"job '{self.job}'")
        if self.field:
            parts.append(self.field)
        text = ": ".join(parts) + ": " + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ManifestError(OctobatchError):
    """One or more manifest files are invalid; carries every diagnostic, not only the first."""

    exit_code = EXIT_INVALID

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        n = len(self.diagnostics)
        summary = f"{n} error{'s' if n != 1 else ''} found"
        super().__init__("\n".join([*map(str, self.diagnostics), summary]))


class StateError(OctobatchError):
    """The lockfile or journal cannot be read or written, or another run holds the lock."""


class Interrupted(OctobatchError):
    """The user pressed Ctrl-C or sent SIGTERM; state is saved and the run can be resumed."""

    exit_code = EXIT_INTERRUPTED


def error_boundary(fn: Callable[[], int]) -> int:
    """Run `fn`, mapping known errors to a one-line message and an exit code.

    Ctrl-C becomes 130; anything unexpected becomes a short report (never the API key: it is
    never put into exception messages in the first place).
    """
    try:
        return fn()
    except OctobatchError as exc:
        print(f"octobatch: {exc}" if not isinstance(exc, ManifestError) else str(exc),
              file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("octobatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 -- the one broad catch: a bug becomes a short report
        tb = traceback.extract_tb(exc.__traceback__)
        last = tb[-1] if tb else None
        where = f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}" if last else ""
        print(
            f"octobatch: internal error: {type(exc).__name__}: {exc}{where}\n"
            "This is a bug in octobatch; your lockfile and journal are intact. "
            "Set OCTOBATCH_DEBUG=1 for the full traceback.",
            file=sys.stderr,
        )
        if _debug():
            traceback.print_exc()
        return EXIT_FAILED


def _debug() -> bool:
    import os

    return os.environ.get("OCTOBATCH_DEBUG", "") not in ("", "0")
