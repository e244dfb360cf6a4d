"""The MP4 files the simulator serves: one small real clip, made unique per task.

Each task gets the shipped clip plus one extra top-level `free` box at the end that names the
task (and pads the file to a requested size). Appending after `mdat` keeps every chunk offset
in `moov` valid, so the result is still a playable MP4, yet two tasks never share bytes.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from importlib.resources import files

_BOX_HEADER = 8
_MARKER = b"octobatch-simulator task="


@lru_cache(maxsize=1)
def base_clip() -> bytes:
    """The shipped clip: 2 s of H.264 test pattern, 320x180, `moov` before `mdat`."""
    return files("octobatch.simulator").joinpath("assets/sample.mp4").read_bytes()


def video_for(task_id: str, size: int | None = None) -> bytes:
    """The exact bytes served for `task_id`; at least `size` bytes long when it is given."""
    clip = base_clip()
    payload = _MARKER + task_id.encode()
    padding = 0 if size is None else max(0, size - len(clip) - _BOX_HEADER - len(payload))
    box_size = _BOX_HEADER + len(payload) + padding
    return b"".join((clip, struct.pack(">I4s", box_size, b"free"), payload, bytes(padding)))
