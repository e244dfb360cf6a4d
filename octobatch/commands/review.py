"""`octobatch review MANIFEST`: serve the gallery with review controls until Ctrl-C.

The first line of standard output is the URL to open (it carries the token); everything else
goes to standard error, so a script can read the URL with `head -n 1`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from pathlib import Path

from octobatch.commands.serving import listening, stop_requested
from octobatch.errors import EXIT_OK
from octobatch.gallery.server import ReviewConfig, serve
from octobatch.manifest import load_manifest


def main(args: argparse.Namespace) -> int:
    # Validate first: a bad manifest is exit 2 with its errors, before anything listens.
    load_manifest(args.manifest, allow_outside_files=args.allow_outside_files,
                  allow_outside_output=args.allow_outside_output, output_dir=args.output_dir)
    config = ReviewConfig(manifest=Path(args.manifest),
                          allow_outside_files=args.allow_outside_files,
                          allow_outside_output=args.allow_outside_output,
                          output_dir=args.output_dir)
    return asyncio.run(_serve(config, args.host, args.port))


async def _serve(config: ReviewConfig, host: str, port: int) -> int:
    runner, url = await listening(serve(config, host, port), host, port)
    stop = stop_requested()
    print(url, flush=True)
    if not _is_loopback(host):
        print(f"warning: listening on {host}, not only this machine; anyone who learns the "
              "URL can record decisions", file=sys.stderr)
    print(f"reviewing {config.manifest}: open the URL above; Ctrl-C to stop", file=sys.stderr,
          flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return EXIT_OK


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
