"""`run --notify URL`: POST a JSON summary when a run ends, for chat webhooks and scripts.

The summary has the counts, what is spent, the gallery's path and a one-line `text` (what
Slack-style webhooks display; `content` holds the same line for Discord-style ones). Sending
has a short timeout and a few retries; a notification that cannot be delivered is reported on
stderr and never changes the run's exit code. Nothing in it comes from the key, and messages
name only the receiver's host: a webhook URL is itself a secret.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from octobatch.costs import amount, recorded_spend
from octobatch.engine import RunResult
from octobatch.paths import absolute
from octobatch.selection import matches

if TYPE_CHECKING:
    from octobatch.session import RunSession

Outcome = Literal["completed", "failed", "stopped", "interrupted"]
TIMEOUT = 5.0
ATTEMPTS = 3
BACKOFF = 0.5  # seconds before the second attempt, doubled after each


@dataclass(frozen=True)
class RunSummary:
    manifest: str  # the manifest's path as the user gave it
    outcome: Outcome
    result: RunResult
    total: int  # jobs in this run
    spent: float
    currency: str
    gallery: str  # absolute

    def text(self) -> str:
        r = self.result
        head = {"completed": "finished", "failed": "finished with failures",
                "stopped": "stopped submitting", "interrupted": "was interrupted"}[self.outcome]
        line = (f"octobatch: {self.manifest} {head}: {r.completed} completed, {r.failed} failed, "
                f"{r.unfinished} unfinished of {self.total}; spent {amount(self.spent, self.currency)}")
        if self.outcome == "stopped" and r.submissions_stopped:
            line += f" ({r.submissions_stopped})"
        return line

    def payload(self) -> dict[str, Any]:
        text = self.text()
        r = self.result
        return {
            "text": text,
            "content": text,
            "manifest": self.manifest,
            "outcome": self.outcome,
            "total": self.total,
            "completed": r.completed,
            "failed": r.failed,
            "unfinished": r.unfinished,
            "running_at_provider": r.running_at_provider,
            "possible_duplicates": list(r.possible_duplicates),
            "spent": round(self.spent, 9),
            "currency": self.currency,
            "gallery": self.gallery,
        }


def outcome_of(result: RunResult, *, interrupted: bool) -> Outcome:
    if interrupted:
        return "interrupted"
    if result.ok:
        return "completed"
    return "stopped" if result.submissions_stopped else "failed"


def run_summary(session: RunSession, globs: Sequence[str] | None, result: RunResult, *,
                interrupted: bool) -> RunSummary:
    """The summary of one manifest's run, from its session (jobs selected by `--only`)."""
    manifest = session.manifest
    total = sum(1 for job in manifest.jobs if matches(job.id, globs))
    return RunSummary(str(manifest.path), outcome_of(result, interrupted=interrupted), result,
                      total, recorded_spend(session.store.state), manifest.settings.currency or "",
                      absolute(manifest.output_dir / "index.html"))


Post = Callable[[str, bytes, float], Awaitable[int]]


async def post_json(url: str, body: bytes, timeout: float) -> int:
    """One POST; returns the HTTP status."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        async with http.post(url, data=body, allow_redirects=False,
                             headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            return resp.status


async def send(url: str, summary: RunSummary, *, timeout: float | None = None,
               attempts: int = ATTEMPTS, backoff: float | None = None, post: Post = post_json,
               sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> str | None:
    """Deliver `summary`; None when a 2xx came back, else why not (never raises)."""
    timeout = TIMEOUT if timeout is None else timeout  # module values: tests shorten them
    backoff = BACKOFF if backoff is None else backoff
    body = json.dumps(summary.payload(), ensure_ascii=False).encode()
    why = "not tried"
    for attempt in range(1, attempts + 1):
        try:
            status = await post(url, body, timeout)
        except asyncio.TimeoutError:
            why = f"no answer within {timeout:g} s"
        except Exception as exc:  # noqa: BLE001 -- any failure to notify is reported, never raised
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            if 200 <= status < 300:
                return None
            why = f"HTTP {status}"
            if 400 <= status < 500 and status != 429:
                break  # the receiver refuses this request: retrying would not change it
        if attempt < attempts:
            await sleep(backoff * 2 ** (attempt - 1))
    host = urlsplit(url).netloc or url
    return (f"notification to {host} failed ({why}, {attempt} attempt"
            f"{'s' if attempt != 1 else ''}); the run itself is not affected")


async def notify_run_end(url: str | None, summary: RunSummary, say: IO[str]) -> None:
    """Send the summary when `--notify` was given; report a failure on stderr."""
    if not url:
        return
    _uncancel()
    problem = await send(url, summary)
    if problem:
        import sys

        print(f"octobatch: {problem}", file=sys.stderr)


def _uncancel() -> None:
    """After Ctrl-C the run's task was cancelled once; let the notification still be awaited."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+; 3.10 keeps no count
    if cancelling is not None and cancelling():
        getattr(task, "uncancel")()
