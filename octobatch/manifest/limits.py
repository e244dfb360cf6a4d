"""Size limits on what a manifest may ask for, each with an environment override.

A manifest is often someone else's file: a few lines can expand to millions of jobs or point
at a 1 GB "image". The limits keep validation fast and memory bounded; a user with a real
need raises one for one command (`OCTOBATCH_MAX_JOBS=500000 octobatch run big.yaml`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from octobatch.errors import UsageError

MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    jobs: int = 100_000  # jobs per manifest, after defaults, matrix and rows are expanded
    image_bytes: int = 20 * MB  # one local or inline image
    prompt_chars: int = 20_000  # one prompt, after its {variables} are filled
    rows_bytes: int = 64 * MB  # one `rows:` file

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Limits:
        """The defaults, with any `OCTOBATCH_MAX_*` override; a bad value is a usage error."""
        values: dict[str, int] = {}
        for item in fields(cls):
            name = ENV_NAMES[item.name]
            text = environ.get(name, "").strip()
            if not text:
                continue
            scale = MB if item.name.endswith("_bytes") else 1
            if not text.isdigit() or int(text) < 1:
                raise UsageError(f"{name} must be a whole number of at least 1"
                                 f"{' (megabytes)' if scale == MB else ''}, got {text!r}")
            values[item.name] = int(text) * scale
        return cls(**values)


ENV_NAMES = {
    "jobs": "OCTOBATCH_MAX_JOBS",
    "image_bytes": "OCTOBATCH_MAX_IMAGE_MB",
    "prompt_chars": "OCTOBATCH_MAX_PROMPT_CHARS",
    "rows_bytes": "OCTOBATCH_MAX_ROWS_MB",
}
