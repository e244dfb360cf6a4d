"""`octobatch simulate`: serve the local API simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import fields

from octobatch.commands.serving import listening, stop_requested
from octobatch.errors import EXIT_OK, UsageError
from octobatch.simulator import DEMO_KEY, Faults, Simulator
from octobatch.simulator.options import faults_from_args, usage_from_args

EXAMPLE_BODY = ('{"model": "omni-fast", "prompt": "Ocean waves at golden hour", '
                '"seconds": "8", "aspect_ratio": "16:9"}')


def main(args: argparse.Namespace) -> int:
    try:
        faults = faults_from_args(args)
    except ValueError as exc:
        raise UsageError(f"simulate: {exc}") from None
    if not args.quiet:
        _log_to_stderr()
    simulator = Simulator(latency=args.latency, jitter=args.jitter, faults=faults,
                          fail_rate=args.fail_rate, video_bytes=args.video_bytes, seed=args.seed,
                          usage=usage_from_args(args))
    return asyncio.run(_serve(simulator, args.host, args.port))


async def _serve(simulator: Simulator, host: str, port: int) -> int:
    base_url = await listening(simulator.start(host, port), host, port)
    stop = stop_requested()
    print(banner(base_url, simulator.faults), flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.stop()
    print("simulator stopped", flush=True)
    return EXIT_OK


def _log_to_stderr() -> None:
    # One line per request and per injected fault, so a user can see what a client met.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logger = logging.getLogger("octobatch.simulator")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def banner(base_url: str, faults: Faults) -> str:
    changed = [f"{f.name}={getattr(faults, f.name)}" for f in fields(Faults)
               if getattr(faults, f.name) != f.default]
    return "\n".join([
        f"octobatch simulator listening on {base_url}",
        f"API key (demo): {DEMO_KEY}",
        f"faults: {', '.join(changed) if changed else 'none'}",
        "",
        "Try it:",
        f"  curl -X POST {base_url}/v1/videos \\",
        f'    -H "Authorization: Bearer {DEMO_KEY}" \\',
        '    -H "Content-Type: application/json" \\',
        f"    -d '{EXAMPLE_BODY}'",
        "",
        "Run a manifest against it:",
        f"  OCTOPUSX_API_KEY={DEMO_KEY} octobatch run manifests/example.yaml --base-url {base_url}",
        "",
        "Press Ctrl-C to stop.",
    ])
