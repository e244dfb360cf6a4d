"""Command-line options of `octobatch simulate`: one flag per `Faults` field, plus the basics.

The fault flags are built from the `Faults` dataclass itself, so a new fault is a new flag
without a second list to keep in step.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import fields

from octobatch.argtypes import count, non_negative, probability
from octobatch.simulator.faults import ROUTE_FAULTS, ROUTES, Faults
from octobatch.simulator.usage import KeyUsage

_WHAT = {
    "429": "a 429 with Retry-After",
    "429_bare": "a 429 without Retry-After",
    "500": "a 500",
    "502": "a 502",
    "503": "a 503",
    "drop": "a dropped connection",
    "truncate": "a body cut off halfway",
    "stall": "a body that stops halfway on an open connection",
    "overlong": "a Content-Length larger than the body",
    "html": "200 and an HTML page instead of the video",
}
# Only on submit does a fault's answer hide a created (and billed) task.
_CREATES_TASK = frozenset({"502", "drop"})
_PROBABILITIES = frozenset({"cut_chunk_rate"})
_HELP = {
    "retry_after": "seconds sent in Retry-After with the 429 faults (default 1)",
    "response_delay": "hold every API answer back this many seconds",
    "response_delay_jitter": "plus a random 0..S seconds more",
    "download_bytes_per_second": "throttle downloads to this many bytes per second",
    "url_ttl": "result URLs expire after S seconds; a new poll hands out a fresh one",
    "concurrency_limit": "429 token_concurrency_limit_reached beyond N unfinished tasks",
    "honour_idempotency": "a repeated Idempotency-Key returns the first task (off upstream)",
    "cut_chunk_rate": "chance per 64 KB chunk of a download that the connection is cut in it",
    "ignore_range": "answer Range requests with 200 and the whole file",
    "object_changes": "replace a task's file (new ETag) before each of its next N downloads",
    "download_gzip": "gzip downloads when the client accepts gzip",
    "url_ttl_cuts_downloads": "cut a download still running when its URL expires",
    "outage_at": "start a network outage S seconds after the simulator starts",
    "outage_seconds": "the outage lasts S seconds: nothing listens, open connections drop",
    "outage_every": "repeat the outage every S seconds (from one start to the next)",
    "status_running": "status word while running (default in_progress; e.g. processing)",
    "status_completed": "status word when done (default completed; e.g. succeeded)",
    "status_upper": "send status words in upper case",
    "url_location": "where the result URL appears (content = only via /content)",
    "progress_style": "progress as 50, \"50\" or \"50%%\"",
    "empty_error_while_running": "send an empty error object until the task ends",
    "task_id_prefix": "prefix of task ids, e.g. 'task:' for ids that need URL-encoding",
}


def _route_fault_help(name: str) -> str | None:
    for route in ROUTES:
        for kind in ROUTE_FAULTS:
            what = _WHAT[kind]
            if route == "submit" and kind in _CREATES_TASK:
                what += " (the task is still created)"
            if name == f"{route}_{kind}":
                return f"probability of {what} per {route} request"
            if name == f"{route}_{kind}_first":
                return f"answer the first N {route} requests with {what}"
    return None


USAGE = "%(prog)s [--host H] [--port P] [--latency S] [--quiet] [FAULT OPTIONS ...]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # With ~80 flags argparse's generated usage is ~40 lines: a bad value would bury its
    # one-line error under it. `--help` still lists every flag.
    parser.usage = USAGE
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="log nothing per request (by default each request and each "
                             "injected fault is logged to stderr)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks one)")
    parser.add_argument("--latency", type=non_negative, default=2.0, metavar="S",
                        help="seconds a task takes from submission to completion (default 2)")
    parser.add_argument("--jitter", type=non_negative, default=0.0, metavar="S",
                        help="vary each task's latency by up to +-S seconds")
    parser.add_argument("--fail-rate", type=probability, default=0.0, metavar="P",
                        help="fraction of tasks that fail (a prompt with [fail] always does)")
    parser.add_argument("--video-bytes", type=count, metavar="N",
                        help="pad every served MP4 to at least N bytes")
    parser.add_argument("--seed", type=int, metavar="N", help="make faults and ids reproducible")

    usage = parser.add_argument_group("the key's usage (GET /api/usage/token/)")
    usage.add_argument("--quota-granted", type=count, default=KeyUsage.granted, metavar="N",
                       help=f"quota granted to the key (default {KeyUsage.granted})")
    usage.add_argument("--quota-used", type=count, default=0, metavar="N",
                       help="quota already used (default 0)")
    usage.add_argument("--unlimited-quota", action="store_true",
                       help="report the key's quota as unlimited")
    usage.add_argument("--key-expires-at", type=count, default=0, metavar="UNIX",
                       help="the key's expiry in Unix seconds (default 0: never); once past, "
                            "every request is refused with 401")
    usage.add_argument("--no-usage-endpoint", action="store_true",
                       help="leave the usage route out, like a gateway without it")

    group = parser.add_argument_group("faults (all off by default; see docs/simulator.md)")
    hints = typing.get_type_hints(Faults)
    for f in fields(Faults):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        route_help = _route_fault_help(f.name)
        if hint is bool:
            group.add_argument(flag, action="store_true", help=_HELP[f.name])
        elif typing.get_origin(hint) is typing.Literal:
            group.add_argument(flag, choices=typing.get_args(hint), default=f.default,
                               help=_HELP[f.name])
        elif hint is str:
            group.add_argument(flag, default=f.default, metavar="TEXT", help=_HELP[f.name])
        elif hint is int:
            group.add_argument(flag, type=count, default=f.default, metavar="N",
                               help=route_help or _HELP[f.name])
        elif route_help is not None or f.name in _PROBABILITIES:
            group.add_argument(flag, type=probability, default=f.default, metavar="P",
                               help=route_help or _HELP[f.name])
        else:
            metavar = "RATE" if f.name.endswith("per_second") else "S"
            group.add_argument(flag, type=non_negative, default=f.default, metavar=metavar,
                               help=_HELP[f.name])


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The `Faults` the parsed flags describe (raises ValueError for inconsistent ones)."""
    return Faults(**{f.name: getattr(args, f.name) for f in fields(Faults)})


def usage_from_args(args: argparse.Namespace) -> KeyUsage | None:
    """The `KeyUsage` the parsed flags describe; None without the usage route."""
    if args.no_usage_endpoint:
        return None
    return KeyUsage(granted=args.quota_granted, used=args.quota_used,
                    unlimited=args.unlimited_quota, expires_at=args.key_expires_at)
