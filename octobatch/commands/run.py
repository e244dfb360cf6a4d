"""`octobatch run`: load, plan and carry out each manifest; own the terminal and the signals."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from octobatch.api import endpoint, engine_options, resolve_api_key
from octobatch.confirm import ask_before_spending
from octobatch.engine import RunResult
from octobatch.errors import EXIT_FAILED, EXIT_OK, Interrupted
from octobatch.manifest import Manifest, load_manifests
from octobatch.notify import notify_run_end, run_summary
from octobatch.paths import shown as _shown
from octobatch.plan import Action
from octobatch.progress import make_listener
from octobatch.selection import check_globs, only
from octobatch.session import RunSession, check_output_folder
from octobatch.state import StateStore

# SIGHUP too: a closed terminal or a dropped SSH session must stop the run as cleanly as
# Ctrl-C does (a submission's answer journaled first), not kill it mid-POST.
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main(args: argparse.Namespace) -> int:
    output_dir = Path(args.output_dir) if args.output_dir else None
    # Every manifest is validated, and every problem of each reported, before any request is
    # made: a typo must not cost a half-run.
    manifests = load_manifests(args.manifests, allow_outside_files=args.allow_outside_files,
                               allow_outside_output=args.allow_outside_output,
                               output_dir=output_dir)
    check_globs(args.only, (job.id for m in manifests for job in m.jobs), ", ".join(args.manifests))
    check_globs(args.replace, (job.id for m in manifests for job in m.jobs),
                ", ".join(args.manifests), flag="--replace")
    api_key = resolve_api_key(None, base_url=args.base_url, simulate=args.simulate)
    # Every manifest's folder before the first one pays: a later one's unwritable folder must
    # not be found after the earlier ones were paid for.
    for manifest in manifests[1:]:
        check_output_folder(manifest, manifest.output_dir)
    try:
        return asyncio.run(_run_all(args, manifests, api_key))
    except asyncio.CancelledError:  # a signal before any manifest's state was opened
        raise Interrupted("interrupted before any job started; nothing to resume") from None


async def _run_all(args: argparse.Namespace, manifests: list[Manifest], api_key: str) -> int:
    stores: list[StateStore] = []
    main_task = asyncio.current_task()
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            # Second signal: leave now. Every task id is already in the journal.
            for store in stores:
                store.sync_now()
            sys.stderr.write("octobatch: interrupted again; exiting now (the journal holds "
                             "every task id; rerun to resume)\n")
            sys.stderr.flush()
            os._exit(130)
        if main_task is not None:
            main_task.cancel()

    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    out = sys.stdout
    say = sys.stderr if args.json else sys.stdout  # keep stdout pure JSON lines with --json
    code = EXIT_OK
    try:
        async with endpoint(args.base_url, api_key, args.simulate) as (base_url, key):
            for manifest in manifests:
                options = engine_options(
                    manifest, concurrency=args.concurrency, poll_interval=args.poll_interval,
                    timeout=args.timeout, deadline=args.deadline, prune=args.prune,
                    simulate=args.simulate, max_cost=args.max_cost)
                emit = make_listener(out, json_lines=args.json, quiet=args.quiet)
                interrupted: RunResult | None = None
                result: RunResult | None = None
                async with RunSession(manifest, base_url, key, options, emit) as session:
                    stores.append(session.store)
                    try:
                        result = await _run_one(session, args, say, base_url)
                    except asyncio.CancelledError:
                        emit.close()  # before the message: tqdm must not redraw below it
                        session.store.sync_now()
                        interrupted = session.tally()
                    end = run_summary(session, args.only, result or interrupted or session.tally(),
                                      interrupted=interrupted is not None)
                await notify_run_end(args.notify, end, say)  # the gallery is written by now
                if interrupted is not None:
                    raise Interrupted(_interrupted_message(interrupted, args))
                if result is not None:
                    if result.submissions_stopped and (args.quiet or args.json):
                        # One line with the cause, always: the progress output showed it
                        # already, but --quiet shows nothing and --json is for programs, and a
                        # cron job must not lose a rejected key.
                        print(f"octobatch: {manifest.path.name}: submissions were stopped: "
                              f"{result.submissions_stopped}", file=sys.stderr)
                    if not args.quiet:
                        print(_summary(manifest, result), file=say)
                    if not result.ok:
                        code = EXIT_FAILED
                if session.gallery_error is not None:  # the run goes on with the next manifest
                    print(f"octobatch: {session.gallery_error}; every result is in "
                          f"{_shown(session.store.lock_path)}: fix the folder, then `octobatch "
                          f"report {shlex.quote(_shown(manifest.path))}` writes the page",
                          file=sys.stderr)
                    code = EXIT_FAILED
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        for store in stores:
            store.close()
    return code


async def _run_one(session: RunSession, args: argparse.Namespace,
                   say: IO[str], base_url: str) -> RunResult | None:
    manifest = session.manifest
    plan = only(session.plan(retry_failed=args.retry_failed, replace=args.replace or (),
                             replace_rejected=args.replace_rejected), args.only)
    idle = {Action.SKIP} | ({Action.ORPHAN} if not args.prune else set())
    if all(step.action in idle for step in plan.steps):
        if not args.quiet:
            done = sum(1 for step in plan.steps if step.action is Action.SKIP)
            print(f"{manifest.path.name}: nothing to do ({done} jobs completed)", file=say)
        return None
    ask_before_spending(session, plan, args, base_url, say)
    return await session.run(plan)


def _summary(manifest: Manifest, result: RunResult) -> str:
    gallery = manifest.output_dir / "index.html"
    line = (f"{manifest.path.name}: {result.completed} completed, {result.failed} failed, "
            f"{result.unfinished} unfinished; files in {_shown(manifest.output_dir)} "
            f"(gallery: {_shown(gallery)})")
    if result.possible_duplicates:
        line += ("\npossible duplicate submissions (the provider may have charged twice; check "
                 "its dashboard): " + ", ".join(result.possible_duplicates))
    if result.submissions_stopped and result.not_submitted:
        n = result.not_submitted
        line += (f"\n{n} job{'s' if n != 1 else ''} not submitted (submissions were stopped: "
                 f"{result.submissions_stopped})")
        if manifest.settings.prices:
            line += f"; spent so far: {result.spent:g} {manifest.settings.currency or ''}".rstrip()
    if result.blocked:
        n = result.blocked
        line += (f"\n{n} job{'s' if n != 1 else ''} blocked by a file octobatch did not write "
                 "(named above): move it away, then rerun")
    if result.unfinished > result.blocked:
        line += "\nrerun the same command to resume the unfinished jobs"
    if result.failed:
        line += "\nadd --retry-failed to submit the failed jobs again"
    return line


def _interrupted_message(result: RunResult, args: argparse.Namespace) -> str:
    n = result.running_at_provider
    return (f"interrupted; state saved. {n} task{'s' if n != 1 else ''} still running at the "
            f"provider. Resume with: {_resume_command(args)}")


def _resume_command(args: argparse.Namespace) -> str:
    words = ["octobatch", "run", *args.manifests]
    flags: list[tuple[str, Callable[[argparse.Namespace], object]]] = [
        ("--base-url", lambda a: a.base_url),
        ("--output-dir", lambda a: a.output_dir),
        ("--concurrency", lambda a: a.concurrency),
        ("--poll-interval", lambda a: a.poll_interval),
        ("--timeout", lambda a: a.timeout),
        ("--deadline", lambda a: a.deadline),
    ]
    for flag, get in flags:
        if (value := get(args)) is not None:
            words += [flag, str(value)]
    for flag, on in (("--retry-failed", args.retry_failed), ("--simulate", args.simulate),
                     ("--allow-outside-files", args.allow_outside_files),
                     ("--allow-outside-output", args.allow_outside_output)):
        if on:
            words.append(flag)
    return shlex.join(words)

