"""`octobatch report MANIFEST`: (re)write the HTML gallery from the lockfile, without network."""

from __future__ import annotations

import argparse

from octobatch.errors import EXIT_OK
from octobatch.manifest import load_manifest
from octobatch.paths import shown
from octobatch.report import write_gallery
from octobatch.state import load_state


def main(args: argparse.Namespace) -> int:
    manifest = load_manifest(
        args.manifest,
        allow_outside_files=args.allow_outside_files,
        output_dir=args.output_dir,
    )
    path = write_gallery(manifest, load_state(manifest.path))
    print(shown(path))
    return EXIT_OK
