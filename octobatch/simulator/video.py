"""The MP4 files the simulator serves: one small real clip, made unique per task.

Each task gets the shipped clip plus one extra top-level `free` box at the end that names the
task (and pads the file to a requested size). Appending after `mdat` keeps every chunk offset
in `moov` valid, so the result is still a playable MP4, yet two tasks never share bytes.
A `VideoFile` serves any byte range without building the whole padded file, so 50 MB videos
cost no more memory than 2 MB ones.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

_BOX_HEADER = 8
_MARKER = b"octobatch-simulator task="


@lru_cache(maxsize=1)
def base_clip() -> bytes:
    """The shipped clip: 2 s of H.264 test pattern, 320x180, `moov` before `mdat`."""
    return files("octobatch.simulator").joinpath("assets/sample.mp4").read_bytes()


@dataclass(frozen=True)
class VideoFile:
    """One task's file: a short head of real bytes followed by `padding` zero bytes."""

    head: bytes
    padding: int

    @property
    def size(self) -> int:
        return len(self.head) + self.padding

    def read(self, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (exclusive), clipped to the file."""
        end = min(end, self.size)
        if start >= end:
            return b""
        from_head = self.head[start:end]
        zeros = end - max(start, len(self.head))
        return from_head + bytes(zeros) if zeros > 0 else from_head


def video_file(task_id: str, size: int | None = None, version: int = 0) -> VideoFile:
    """The file served for `task_id`: at least `size` bytes when given. `version` > 0 is the
    object after the provider replaced it (other bytes, same shape)."""
    clip = base_clip()
    payload = _MARKER + task_id.encode() + (f" version={version}".encode() if version else b"")
    padding = 0 if size is None else max(0, size - len(clip) - _BOX_HEADER - len(payload))
    box_size = _BOX_HEADER + len(payload) + padding
    return VideoFile(b"".join((clip, struct.pack(">I4s", box_size, b"free"), payload)), padding)


def video_for(task_id: str, size: int | None = None, version: int = 0) -> bytes:
    """The exact bytes served for `task_id`; at least `size` bytes long when it is given."""
    video = video_file(task_id, size, version)
    return video.read(0, video.size)
