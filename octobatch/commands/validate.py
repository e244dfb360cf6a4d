"""`octobatch validate MANIFEST...`: check manifests without touching the network or state.

Every file is checked and every problem reported; valid files get a one-line OK.
"""

from __future__ import annotations

import argparse
from collections import Counter

from octobatch.errors import EXIT_OK, Diagnostic, ManifestError
from octobatch.manifest import Manifest, load_manifest


def main(args: argparse.Namespace) -> int:
    diagnostics: list[Diagnostic] = []
    for path in args.manifests:
        try:
            manifest = load_manifest(path, allow_outside_files=args.allow_outside_files)
        except ManifestError as exc:
            diagnostics.extend(exc.diagnostics)
            continue
        print(f"{path}: OK, {summary(manifest)}")
    if diagnostics:
        raise ManifestError(diagnostics)
    return EXIT_OK


def summary(manifest: Manifest) -> str:
    """`10 jobs (6 omni-fast, 2 jimeng-video-3.0, ...)`."""
    n = len(manifest.jobs)
    by_model = Counter(job.model for job in manifest.jobs)
    detail = ", ".join(f"{count} {model}" for model, count in by_model.most_common())
    return f"{n} job{'s' if n != 1 else ''}" + (f" ({detail})" if detail else "")
