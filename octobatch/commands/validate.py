"""`octobatch validate MANIFEST...`: check manifests without touching the network or state.

Every file is checked and every problem reported; valid files get a one-line OK. A folder
stands for the manifests in it, and octobatch's own state files (which `manifests/*` also
matches) are skipped with a word on what they are.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from octobatch.errors import EXIT_OK, Diagnostic, ManifestError, UsageError
from octobatch.manifest import Manifest, NotAManifest, load_manifest

MANIFEST_SUFFIXES = (".yaml", ".yml")


def main(args: argparse.Namespace) -> int:
    diagnostics: list[Diagnostic] = []
    validated = 0
    for path in _manifests(args.manifests):
        try:
            manifest = load_manifest(path, allow_outside_files=args.allow_outside_files,
                                     allow_outside_output=args.allow_outside_output)
        except NotAManifest as exc:
            print(f"{path}: skipped: {exc.diagnostics[0].message}")
            continue
        except ManifestError as exc:
            diagnostics.extend(exc.diagnostics)
            validated += 1
            continue
        validated += 1
        print(f"{path}: OK, {summary(manifest)}")
    if diagnostics:
        raise ManifestError(diagnostics)
    if not validated:
        raise UsageError("no manifest to validate in " + ", ".join(args.manifests))
    return EXIT_OK


def _manifests(arguments: Iterable[str]) -> Iterator[str]:
    """Each argument, or for a folder the manifests directly in it (as the user would type
    their paths)."""
    for argument in arguments:
        # A folder named like a manifest is a mistake the loader words; other folders hold them.
        if not Path(argument).is_dir() or argument.endswith(MANIFEST_SUFFIXES):
            yield argument
            continue
        names = sorted(entry.name for entry in os.scandir(argument)
                       if entry.name.endswith(MANIFEST_SUFFIXES) and not entry.name.startswith(".")
                       and entry.is_file())
        if not names:
            print(f"{argument}: skipped: a folder without manifests (*.yaml, *.yml) in it")
        yield from (os.path.join(argument, name) for name in names)


def summary(manifest: Manifest) -> str:
    """`10 jobs (6 omni-fast, 2 jimeng-video-3.0, ...)`."""
    n = len(manifest.jobs)
    by_model = Counter(job.model for job in manifest.jobs)
    detail = ", ".join(f"{count} {model}" for model, count in by_model.most_common())
    return f"{n} job{'s' if n != 1 else ''}" + (f" ({detail})" if detail else "")
