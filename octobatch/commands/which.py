"""`octobatch which FILE.mp4`: which manifest, job and take produced a video (by its sha256)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from octobatch.errors import EXIT_FAILED, EXIT_OK
from octobatch.which import render, which


def main(args: argparse.Namespace) -> int:
    video, search_dir = Path(args.video), Path(args.search)
    result = which(video, search_dir)
    for problem in result.unreadable:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if args.json:
        json.dump({"file": str(video), "sha256": result.sha256,
                   "matches": [o.to_json() for o in result.origins]},
                  sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        (sys.stdout if result.origins else sys.stderr).write(render(video, search_dir, result))
    return EXIT_OK if result.origins else EXIT_FAILED
