"""Command line: parse arguments, make one library call, return an exit code.

Command modules are imported lazily so `validate` and `plan` never pay for aiohttp.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from octobatch import __version__
from octobatch.argtypes import positive_float, positive_int
from octobatch.errors import EXIT_INVALID, EXIT_OK, error_boundary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octobatch",
        description="Turn YAML manifests of video jobs into finished MP4 files.",
    )
    parser.add_argument("--version", action="version", version=f"octobatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    allow_outside = argparse.ArgumentParser(add_help=False)
    allow_outside.add_argument(
        "--allow-outside-files",
        action="store_true",
        help="let the manifest read local files outside its own directory tree",
    )

    p = sub.add_parser("validate", parents=[allow_outside], help="check manifests; exit 0 valid, 2 invalid")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST")

    p = sub.add_parser("plan", parents=[allow_outside], help="show what a run would do and why")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--retry-failed", action="store_true", help="plan failed jobs for resubmission")
    p.add_argument("--output-dir", metavar="DIR", help="where the MP4s go (overrides the manifest)")

    p = sub.add_parser("run", parents=[allow_outside], help="submit, poll and download every job")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST")
    p.add_argument("--base-url", metavar="URL", help="API base URL (env OCTOBATCH_BASE_URL)")
    p.add_argument("--concurrency", type=positive_int, metavar="N", help="jobs in flight at once")
    p.add_argument("--poll-interval", type=positive_float, metavar="S", help="base poll interval, seconds")
    p.add_argument("--timeout", type=positive_float, metavar="S", help="per-job deadline, seconds")
    p.add_argument("--output-dir", metavar="DIR", help="where the MP4s go (overrides the manifest)")
    p.add_argument("--retry-failed", action="store_true", help="resubmit jobs that failed before")
    p.add_argument("--prune", action="store_true", help="drop orphaned jobs from the lockfile")
    p.add_argument("--simulate", action="store_true", help="run against the built-in simulator")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    out.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("status", parents=[allow_outside], help="state from the lockfile, no network")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("report", parents=[allow_outside], help="write the HTML gallery")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--output-dir", metavar="DIR", help="where the MP4s are (overrides the manifest)")

    p = sub.add_parser("simulate", help="serve the local API simulator")
    from octobatch.simulator.options import add_arguments

    add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 after --help/--version, 2 on bad usage
        return EXIT_OK if exc.code in (0, None) else EXIT_INVALID
    command = importlib.import_module(f"octobatch.commands.{args.command}")
    return error_boundary(lambda: command.main(args))
