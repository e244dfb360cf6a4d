"""`octobatch init [PATH]`: write a commented starter manifest that validates as written.

The first line points editors at this installation's schema, relative to the new file, so
completion and checking work at once (docs/editors.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from octobatch.errors import EXIT_OK, UsageError
from octobatch.fsutil import atomic_write
from octobatch.models import known_models
from octobatch.schemas import default_schema_dir

# `{{` and `}}` are literal braces: the matrix example uses octobatch's own `{name}` templates.
TEMPLATE = """\
# yaml-language-server: $schema={schema}
# An octobatch manifest: every job below becomes one MP4 in output_dir.
#   octobatch validate {path}   check it (file:line:col of every mistake)
#   octobatch plan {path}       what a run would do, seconds of video and cost
#   octobatch run {path}        submit, poll, download (needs OCTOPUSX_API_KEY; --simulate to try)
# Every field of every model: docs/reference.md. Run settings and prices: docs/manifest.md.
version: 1

# Merged under every job; a job's own fields win.
defaults:
  model: omni-fast          # one of: {models}
  seconds: 8                # sent as a string; omni-fast takes 4-30
  aspect_ratio: "16:9"      # or "9:16"
  resolution: 720p          # 720p, 1080p, 2k, 4k

# Optional run settings; command-line flags override them. None changes a job's identity.
settings:
  concurrency: 4            # jobs in flight at once
  poll_interval: 5          # base seconds between polls of one task
{prices}
# Where the MP4s and the gallery (index.html) go, relative to this file.
output_dir: output/{stem}

jobs:
  - id: beach               # optional; letters, digits, '.', '_', '-'
    prompt: Ocean waves at golden hour

  # Image-to-video on jimeng: a local image, relative to this file.
  # - id: cat
  #   model: jimeng-video-3.0
  #   prompt: A cat chases butterflies in the grass
  #   seconds: 5
  #   size: 1280x720
  #   input_reference: images/cat.png

  # A matrix makes one job per combination: here 2 animals x 2 shapes = 4 jobs.
  - id: "walk-{{animal}}-{{aspect_ratio}}"
    prompt: "A {{animal}} walks through fresh snow"
    matrix:
      animal: [cat, dog]                # a template variable, used in id and prompt
      aspect_ratio: ["16:9", "9:16"]    # an API field: set on each job
"""

# Commented out: made-up prices would show made-up costs. The user's own go here.
PRICES = """\
  # What each model costs you (the provider publishes no prices): per second of video
  # and/or per job, both added up. `plan` shows the cost before you spend it.
  # prices:
  #   omni-fast: {per_second: 0.05}
  #   jimeng-video-3.0: {per_job: 0.4}
  # currency: USD
  # max_cost: 20             # stop submitting before the recorded spend would pass this
"""


def main(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give the manifest's file name, "
                         f"e.g. octobatch init {path / 'octobatch.yaml'}")
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists; choose another name or add --force to overwrite it")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent} does not exist; create the folder first")
    try:
        atomic_write(path, render(path).encode("utf-8"))  # never through a planted symlink
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None
    print(f"wrote {path}; next: octobatch plan {path}")
    return EXIT_OK


def render(path: Path, schema_dir: Path | None = None) -> str:
    return TEMPLATE.format(
        schema=schema_reference(path, schema_dir),
        path=path,
        models=", ".join(known_models()),
        prices=PRICES,
        stem=path.stem,
    )


def schema_reference(path: Path, schema_dir: Path | None = None) -> str:
    """This installation's manifest schema, relative to the manifest's folder when it can be."""
    schema = ((schema_dir or default_schema_dir()) / "manifest.schema.json").resolve()
    folder = path.parent.resolve()
    try:
        if Path(os.path.commonpath([schema, folder])) != Path(folder.anchor):
            return Path(os.path.relpath(schema, folder)).as_posix()
    except ValueError:  # another drive on Windows
        pass
    return schema.as_uri()  # no folder in common: a relative path would climb to the root
