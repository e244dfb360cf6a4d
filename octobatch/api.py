"""The library facade: load a manifest, plan it, run it, from Python instead of the shell.

    import octobatch

    manifest = octobatch.load_manifest("manifests/spring.yaml")
    plan = octobatch.make_plan(manifest)          # what a run would do, no network
    result = octobatch.run(manifest)              # OCTOPUSX_API_KEY from the environment
    print(result.completed, result.failed, result.ok)

Same guarantees as `octobatch run`: state is journaled as it changes, the lockfile and the
gallery are written when the run ends (also when it is cancelled or raises), and a second
call resumes. Events (`octobatch.progress`) go to `on_event`; nothing is printed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from octobatch import plan as planning
from octobatch.engine import EngineOptions, RunResult
from octobatch.errors import OctobatchError, UsageError
from octobatch.jobs import JobSpec
from octobatch.manifest import Manifest, load_manifest
from octobatch.plan import Plan
from octobatch.progress import Emit, discard
from octobatch.providers.octopusx import DEFAULT_BASE_URL
from octobatch.retry import DEFAULT_CONCURRENCY, DEFAULT_POLL_INTERVAL
from octobatch.session import RunSession
from octobatch.state import load_state

__all__ = ["Manifest", "Plan", "RunResult", "load_manifest", "make_plan", "run", "run_async"]

ManifestLike = Manifest | str | os.PathLike[str]

SIMULATE_POLL_INTERVAL = 1.0
# How long a task takes in the built-in simulator: long enough to watch a demo progress
# (OCTOBATCH_SIMULATE_LATENCY overrides it, e.g. for quick checks).
SIMULATE_LATENCY = 4.0


def make_plan(manifest: ManifestLike, *, retry_failed: bool = False) -> Plan:
    """What a run would do with each job and why: reads the lockfile and the output files."""
    manifest = _as_manifest(manifest)
    return planning.plan_manifest(manifest, load_state(manifest.path), retry_failed=retry_failed)


def run(
    manifest: ManifestLike,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    concurrency: int | None = None,
    poll_interval: float | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
    retry_failed: bool = False,
    prune: bool = False,
    on_event: Emit | None = None,
    simulate: bool = False,
    max_cost: float | None = None,
    replace: Sequence[str] = (),
) -> RunResult:
    """Run `manifest` to the end (blocking) and return the tally; see `run_async`."""
    return asyncio.run(run_async(
        manifest, base_url=base_url, api_key=api_key, concurrency=concurrency,
        poll_interval=poll_interval, timeout=timeout, deadline=deadline,
        retry_failed=retry_failed, prune=prune, on_event=on_event, simulate=simulate,
        max_cost=max_cost, replace=replace,
    ))


async def run_async(
    manifest: ManifestLike,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    concurrency: int | None = None,
    poll_interval: float | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
    retry_failed: bool = False,
    prune: bool = False,
    on_event: Emit | None = None,
    simulate: bool = False,
    max_cost: float | None = None,
    replace: Sequence[str] = (),
) -> RunResult:
    """Submit, poll and download every job of `manifest` that needs it; resume on a rerun.

    `base_url` defaults to `OCTOBATCH_BASE_URL`, else the real API; `api_key` to
    `OCTOPUSX_API_KEY`. `simulate=True` runs against a simulator started for this call (no key,
    no network). `concurrency`, `poll_interval` and `timeout` override the manifest's
    `settings`; `deadline` (seconds) bounds the whole run: jobs still waiting then are left
    unfinished, to be resumed. `max_cost` caps the recorded spend (default
    `settings.max_cost`); `replace` (globs on job ids) generates those completed jobs again as
    new takes. Raises `ManifestError` for an invalid manifest, `UsageError`
    without a usable key or base URL, `StateError` if another run holds the manifest's lock.
    """
    manifest = _as_manifest(manifest)
    key = resolve_api_key(api_key, base_url=base_url, simulate=simulate)
    options = engine_options(manifest, concurrency=concurrency, poll_interval=poll_interval,
                             timeout=timeout, deadline=deadline, prune=prune,
                             simulate=simulate, max_cost=max_cost)
    async with endpoint(base_url, key, simulate) as (url, endpoint_key), \
            RunSession(manifest, url, endpoint_key, options, on_event or discard) as session:
        result = await session.run(session.plan(retry_failed=retry_failed, replace=replace))
    if session.gallery_error is not None:
        raise OctobatchError(session.gallery_error)  # the lockfile holds every result
    return result


def resolve_api_key(api_key: str | None, *, base_url: str | None, simulate: bool) -> str:
    """The key to send: the argument, else OCTOPUSX_API_KEY; none is needed to simulate."""
    if simulate and base_url:
        raise UsageError("--simulate runs against the built-in simulator; drop --base-url")
    key = api_key if api_key is not None else os.environ.get("OCTOPUSX_API_KEY", "")
    if simulate:
        return key
    if not key:
        raise UsageError("set OCTOPUSX_API_KEY to your octopusx API key "
                         "(or try `octobatch run --simulate` without one)")
    if any(c.isspace() or not c.isprintable() for c in key):
        # Never shown: a stray newline or space from copying the key is the usual cause.
        raise UsageError("OCTOPUSX_API_KEY contains whitespace or control characters (a "
                         "newline or space copied with it?); set it to the key alone")
    resolve_base_url(base_url)
    return key


def resolve_base_url(base_url: str | None) -> str:
    """The API's base URL: the argument, else OCTOBATCH_BASE_URL, else the real API; checked
    before any request, so a typo is a usage error instead of a night of failed submissions."""
    if base_url:
        url, source = base_url, "--base-url"
    elif os.environ.get("OCTOBATCH_BASE_URL"):
        url, source = os.environ["OCTOBATCH_BASE_URL"], "OCTOBATCH_BASE_URL"
    else:
        return DEFAULT_BASE_URL
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source} {url!r} is not an http:// or https:// URL with a host; "
                         "write it like https://octopusx.ai or http://127.0.0.1:8000")
    return url


def engine_options(
    manifest: Manifest,
    *,
    concurrency: int | None = None,
    poll_interval: float | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
    prune: bool = False,
    simulate: bool = False,
    max_cost: float | None = None,
) -> EngineOptions:
    """Call arguments (CLI flags) win over the manifest's settings, which win over defaults."""
    settings = manifest.settings

    def cost_of(job: JobSpec) -> float | None:  # one submission, from the user's prices
        price = settings.prices.get(job.model)
        return None if price is None else price.of(job.seconds)

    default_interval = SIMULATE_POLL_INTERVAL if simulate else DEFAULT_POLL_INTERVAL
    return EngineOptions(
        output_dir=manifest.output_dir,
        concurrency=concurrency or settings.concurrency or DEFAULT_CONCURRENCY,
        poll_interval=poll_interval or settings.poll_interval or default_interval,
        timeout=timeout or settings.timeout,
        deadline=deadline,
        prune=prune,
        cost_of=cost_of,
        max_cost=max_cost if max_cost is not None else settings.max_cost,
    )


@asynccontextmanager
async def endpoint(
    base_url: str | None, api_key: str, simulate: bool
) -> AsyncIterator[tuple[str, str]]:
    """(base URL, key): the configured API, or a simulator that lives as long as the run."""
    if not simulate:
        yield resolve_base_url(base_url), api_key
        return
    from octobatch.models import project_transports
    from octobatch.simulator import DEMO_KEY, Simulator  # only simulated runs need it

    latency = float(os.environ.get("OCTOBATCH_SIMULATE_LATENCY") or SIMULATE_LATENCY)
    simulator = Simulator(latency=latency, jitter=latency / 2, adopt_unknown_tasks=True,
                          extra_models=project_transports())
    try:
        yield await simulator.start(), DEMO_KEY
    finally:
        await simulator.stop()


def _as_manifest(manifest: ManifestLike) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else load_manifest(Path(manifest))
