"""Command line: parse arguments, make one library call, return an exit code.

Command modules are imported lazily so `validate` and `plan` never pay for aiohttp.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence

from octobatch import __version__
from octobatch.argtypes import count, non_negative, positive_float, positive_int, webhook_url
from octobatch.errors import EXIT_INVALID, EXIT_OK, error_boundary

# Commands that take exactly one manifest: a second positional is a mistake worth explaining.
_ONE_MANIFEST = {"plan", "status", "report", "show", "review"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octobatch",
        description="Turn YAML manifests of video jobs into finished MP4 files.",
        epilog="`octobatch COMMAND --help` shows a command's options; docs/cli.md has them all.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"octobatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    allow_outside = argparse.ArgumentParser(add_help=False)
    allow_outside.add_argument(
        "--allow-outside-files",
        action="store_true",
        help="let the manifest read local files outside its own directory tree",
    )
    allow_outside.add_argument(
        "--allow-outside-output",
        action="store_true",
        help="let the manifest's output_dir point outside its project and the current folder",
    )

    p = sub.add_parser("validate", parents=[allow_outside], help="check manifests; exit 0 valid, 2 invalid")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST")

    only = argparse.ArgumentParser(add_help=False)
    only.add_argument("--only", action="append", metavar="GLOB",
                      help="only the jobs whose id matches this shell-style glob (repeatable)")
    retake = argparse.ArgumentParser(add_help=False)
    retake.add_argument("--replace", action="append", metavar="GLOB",
                        help="generate these completed jobs again as a new take; the current "
                             "video is kept (repeatable)")
    retake.add_argument("--replace-rejected", action="store_true",
                        help="generate the jobs rejected in review again as a new take")

    p = sub.add_parser("plan", parents=[allow_outside, only, retake],
                       help="show what a run would do, why, and what it costs")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--retry-failed", action="store_true", help="plan failed jobs for resubmission")
    p.add_argument("--output-dir", metavar="DIR", help="where the MP4s go (overrides the manifest)")
    p.add_argument("--exit-code", "--detailed-exitcode", action="store_true",
                   help="exit 3 when the run would submit something, 0 when not")
    p.add_argument("--check-key", action="store_true",
                   help="ask the provider for the key's remaining quota and expiry")
    p.add_argument("--base-url", metavar="URL", help="API base URL for --check-key")

    p = sub.add_parser("run", parents=[allow_outside, only, retake],
                       help="submit, poll and download every job")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST")
    p.add_argument("--base-url", metavar="URL", help="API base URL (env OCTOBATCH_BASE_URL)")
    p.add_argument("--concurrency", type=positive_int, metavar="N", help="jobs in flight at once")
    p.add_argument("--poll-interval", type=positive_float, metavar="S", help="base poll interval, seconds")
    p.add_argument("--timeout", type=positive_float, metavar="S", help="per-job deadline, seconds")
    p.add_argument("--deadline", type=positive_float, metavar="S",
                   help="run deadline, seconds: stop waiting then (default: run until done)")
    p.add_argument("--output-dir", metavar="DIR", help="where the MP4s go (overrides the manifest)")
    p.add_argument("--retry-failed", action="store_true", help="resubmit jobs that failed before")
    p.add_argument("--prune", action="store_true", help="drop orphaned jobs from the lockfile")
    p.add_argument("--max-cost", type=non_negative, metavar="AMOUNT",
                   help="stop submitting before the recorded spend would pass AMOUNT "
                        "(settings.max_cost)")
    p.add_argument("--simulate", action="store_true", help="run against the built-in simulator")
    p.add_argument("-y", "--yes", action="store_true",
                   help="do not ask before spending (the question comes only on a terminal)")
    p.add_argument("--notify", type=webhook_url, metavar="URL",
                   help="POST a JSON summary to URL when the run ends")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    out.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("status", parents=[allow_outside, only],
                       help="state from the lockfile, no network")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("show", parents=[allow_outside],
                       help="everything recorded about one job, and the request it sends")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("job", metavar="JOB", help="the job's id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--base-url", metavar="URL", help="API base URL shown in the request")

    p = sub.add_parser("report", parents=[allow_outside, only], help="write the HTML gallery")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--output-dir", metavar="DIR", help="where the MP4s are (overrides the manifest)")

    p = sub.add_parser("review", parents=[allow_outside],
                       help="serve the gallery to approve, reject and choose takes")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=count, default=0, help="port (default 0: a free one)")
    p.add_argument("--output-dir", metavar="DIR", help="where the MP4s are (overrides the manifest)")

    p = sub.add_parser("which", help="which manifest, job and take made a video")
    p.add_argument("video", metavar="FILE", help="an MP4 octobatch downloaded")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--in", dest="search", metavar="DIR", default=".",
                   help="folder whose lockfiles to search (default: the current one)")

    p = sub.add_parser("schema", parents=[allow_outside],
                       help="write an editor schema that knows the project's own models")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--output", metavar="DIR", help="folder to write (default: octobatch-schema "
                   "next to the manifest)")

    p = sub.add_parser("simulate", help="serve the local API simulator")
    from octobatch.simulator.options import add_arguments

    add_arguments(p)

    p = sub.add_parser("init", help="write a commented starter manifest")
    p.add_argument("path", nargs="?", default="octobatch.yaml", metavar="PATH",
                   help="the manifest to create (default octobatch.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")

    p = sub.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=("bash", "zsh", "fish"), metavar="SHELL",
                   help="bash, zsh or fish")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words:  # bare `octobatch`: what it can do, not an error about a missing COMMAND
        parser.print_help()
        return EXIT_OK
    try:
        # Known args first: argparse reports leftovers against the top-level usage, which
        # hides the command's own; they are reported below against the command instead.
        args, extras = parser.parse_known_args(words)
        if extras:
            _unrecognized(parser, args, extras)
        if args.command is None:
            parser.error("a COMMAND is required")
    except SystemExit as exc:  # argparse: 0 after --help/--version, 2 on bad usage
        return EXIT_OK if exc.code in (0, None) else EXIT_INVALID
    command = importlib.import_module(f"octobatch.commands.{args.command}")
    return error_boundary(lambda: command.main(args))


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  extras: list[str]) -> None:
    """Exit 2 with the usage of the command the user typed and a hint where one helps."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    sub = _subparsers(parser).get(args.command or "")
    if sub is None:
        parser.error(message)
    hint = _hint(sub, args, extras)
    sub.error(message + (f" ({hint})" if hint else ""))


def _hint(sub: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> str | None:
    command = args.command
    flags = [f for a in sub._actions for f in a.option_strings if f.startswith("--")]
    for word in extras:
        if command == "run" and word in ("--dry-run", "-n", "--plan"):
            manifest = args.manifests[0] if len(args.manifests) == 1 else "MANIFEST"
            return f"to see what a run would do without doing it: octobatch plan {manifest}"
        if word.startswith("-"):
            close = difflib.get_close_matches(word.split("=", 1)[0], flags, n=1)
            if close:
                return f"did you mean {close[0]}?"
    if command in _ONE_MANIFEST and not extras[0].startswith("-"):
        if command == "status":
            return ("status takes one MANIFEST; for everything about one job: "
                    "octobatch show MANIFEST JOB")
        return f"{command} takes one MANIFEST; call it once per manifest"
    return None


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
