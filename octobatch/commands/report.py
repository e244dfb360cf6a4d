"""`octobatch report MANIFEST`: (re)write the HTML gallery from the lockfile, without network."""

from __future__ import annotations

import argparse
from dataclasses import replace

from octobatch.errors import EXIT_OK
from octobatch.gallery import write_gallery
from octobatch.manifest import load_manifest
from octobatch.paths import shown
from octobatch.selection import check_globs, matches
from octobatch.state import load_state


def main(args: argparse.Namespace) -> int:
    manifest = load_manifest(
        args.manifest,
        allow_outside_files=args.allow_outside_files,
        allow_outside_output=args.allow_outside_output,
        output_dir=args.output_dir,
    )
    state = load_state(manifest.path)
    if args.only:  # a gallery of the selected jobs only
        check_globs(args.only, [*(job.id for job in manifest.jobs), *state.jobs], args.manifest)
        manifest = replace(manifest, jobs=tuple(j for j in manifest.jobs if matches(j.id, args.only)))
        state = replace(state, jobs={i: e for i, e in state.jobs.items() if matches(i, args.only)})
    path = write_gallery(manifest, state)
    print(shown(path))
    return EXIT_OK
