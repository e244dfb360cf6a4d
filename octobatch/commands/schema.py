"""`octobatch schema MANIFEST`: write an editor schema that knows the project's own models.

The shipped `schemas/manifest.schema.json` lists the shipped models; a project that adds model
files (`settings.models_dir`, `OCTOBATCH_MODELS_PATH`) gets a folder of its own with every
model in it, for the `# yaml-language-server: $schema=` comment.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from octobatch.editor_schema import write_project_schema
from octobatch.errors import EXIT_OK, OctobatchError, UsageError
from octobatch.fsutil import project_root
from octobatch.manifest import load_manifest
from octobatch.models import load_models, project_model_dirs

DEFAULT_FOLDER = "octobatch-schema"


def main(args: argparse.Namespace) -> int:
    manifest = Path(args.manifest)
    # The manifest is loaded in full so a broken model folder or manifest is reported first.
    load_manifest(manifest, allow_outside_files=args.allow_outside_files,
                  allow_outside_output=args.allow_outside_output)
    folders = _project_folders(manifest)
    out = Path(args.output) if args.output else manifest.parent / DEFAULT_FOLDER
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder; give another --output")
    try:
        # The default folder sits in the manifest's project: a cloned repository could have
        # planted it (or a model file in it) as a symlink to somewhere else.
        target = write_project_schema(out, folders, project=project_root(manifest.parent))
    except OSError as exc:
        raise OctobatchError(f"{exc.filename or out}: cannot write the editor schema: "
                             f"{exc.strerror}") from None
    count = len(load_models(None, folders))
    local = count - len(load_models())
    comment = Path(os.path.relpath(target, manifest.parent)).as_posix()
    print(f"wrote {target} ({count} models, {local} from the project)")
    print(f"put this first in {manifest.name}: # yaml-language-server: $schema={comment}")
    return EXIT_OK


def _project_folders(manifest: Path) -> tuple[Path, ...]:
    from octobatch.manifest.yamlpos import parse

    data, _ = parse(manifest.read_text(encoding="utf-8-sig"))
    settings = data.get("settings") if isinstance(data, dict) else None
    return project_model_dirs(manifest, settings.get("models_dir")
                              if isinstance(settings, dict) else None)
