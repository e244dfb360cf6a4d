"""`octobatch completion SHELL`: a completion script for bash, zsh or fish, made from the parser.

shtab walks the same argparse parser `main` uses, so every command, flag and choice is
completed without a hand-written script to keep in step.
"""

from __future__ import annotations

import argparse
import sys

from octobatch.errors import EXIT_OK

# Positional arguments that name files: complete them as paths, not as nothing.
_FILE_ARGUMENTS = {"manifest", "manifests", "path"}


def main(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return EXIT_OK


def script(shell: str) -> str:
    import shtab

    from octobatch.cli import build_parser

    parser = build_parser()
    for sub in _subparsers(parser):
        for action in sub._actions:
            if action.dest in _FILE_ARGUMENTS and not action.option_strings:
                action.complete = shtab.FILE  # type: ignore[attr-defined]
            elif action.dest == "output_dir":
                action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
    text: str = shtab.complete(parser, shell=shell)
    return text if text.endswith("\n") else text + "\n"


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for sub in action.choices.values()]
