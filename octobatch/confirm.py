"""Ask before spending: on a terminal, a run that would pay a real provider asks first.

Only when both stdin and the output are terminals; `--yes`, `--simulate`, a pipe or a cron
job never ask. The question shows what would be paid for: jobs, seconds of video, cost.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from octobatch.costs import Estimate, amount, estimate, recorded_spend
from octobatch.errors import EXIT_FAILED, OctobatchError
from octobatch.plan import Plan

if TYPE_CHECKING:
    from octobatch.session import RunSession


class NotConfirmed(OctobatchError):
    """The user answered no: nothing was submitted."""

    exit_code = EXIT_FAILED


def ask_before_spending(session: RunSession, plan: Plan, args: argparse.Namespace,
                        base_url: str, out: IO[str]) -> None:
    """`run`'s question; returns when the run may go on, raises NotConfirmed otherwise."""
    if not plan.costly() or not should_ask(assume_yes=args.yes, simulate=args.simulate,
                                           stdin=sys.stdin, out=out):
        return
    settings = session.manifest.settings
    cost = estimate(plan, settings.prices, settings.currency, recorded_spend(session.store.state))
    confirm(question(str(session.manifest.path), plan, cost, base_url, session.options.max_cost),
            stdin=sys.stdin, out=out)


def should_ask(*, assume_yes: bool, simulate: bool, stdin: IO[str], out: IO[str]) -> bool:
    return not assume_yes and not simulate and _tty(stdin) and _tty(out)


def question(name: str, plan: Plan, cost: Estimate, base_url: str,
             cap: float | None = None) -> str:
    n = plan.costly()
    video = ", ".join(f"{model} {s}s" for model, s in sorted(plan.seconds_by_model().items()))
    money = amount(cost.total, cost.currency)
    if cost.unpriced_jobs:
        priced = n - cost.unpriced_jobs
        money = (f"{money} + {cost.unpriced_jobs} unpriced" if priced
                 else "unpriced (no settings.prices)")
    limit = f", cap {amount(cap, cost.currency)}" if cap is not None else ""
    takes = plan.submissions()
    of = f" ({takes} takes)" if takes != n else ""
    return (f"{name}: {n} job{'s' if n != 1 else ''}{of} to submit to {base_url} "
            f"({video or 'no seconds given'}); cost {money}; already spent "
            f"{amount(cost.spent, cost.currency)}{limit}. Submit? [y/N] ")


def confirm(text: str, *, stdin: IO[str], out: IO[str],
            read: Callable[[], str] | None = None) -> None:
    """Ask `text`; anything but y/yes raises NotConfirmed (so does end of input)."""
    out.write(text)
    out.flush()
    answer = (read or stdin.readline)()
    if answer.strip().lower() not in ("y", "yes"):
        if not answer.endswith("\n"):
            out.write("\n")
        raise NotConfirmed("not confirmed; nothing was submitted (add --yes to skip the "
                           "question, e.g. in scripts)")


def _tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or exotic stream is not a terminal
        return False
