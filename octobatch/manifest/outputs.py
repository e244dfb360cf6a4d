"""Where a manifest's videos go: confined to places the user expects, one folder per manifest.

A cloned repository's manifest must not be able to write anywhere the user can: its
`output_dir` must stay inside its own project (the git work tree that contains it, else its
own folder) or the current directory, unless the user passes `--allow-outside-output`.
(`--output-dir` on the command line is the user's own choice and is not confined.)

Without `output_dir` the folder is `output/<manifest name>` under the current directory. Two
manifests of the same name in different folders must not share it (each would overwrite the
other's paid videos), so a run marks the folder with the manifest it belongs to
(`.octobatch-manifest`); a folder marked for another manifest is left alone and this one
uses `output/<parent folder>-<name>` (then `output/<name>-<8 hex digits>`) instead.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from octobatch import fsutil
from octobatch.errors import StateError
from octobatch.fsutil import SymlinkRefused, make_dirs, open_file

OWNER_FILE = ".octobatch-manifest"
_MAX_OWNER_BYTES = 4096


def project_root(manifest: Path) -> Path:
    """The git work tree that contains the manifest, else the manifest's own folder."""
    folder = manifest.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


def outside_reason(target: Path, manifest: Path) -> str | None:
    """Why a manifest may not write to `target` (absolute), or None when it may."""
    real = Path(os.path.realpath(target))  # symlinks in the path count where they lead
    root = project_root(manifest)
    if real.is_relative_to(root) or real.is_relative_to(Path.cwd().resolve()):
        return None
    return f"outside the manifest's project ({_shown(root)}) and the current folder"


def write_root(folder: Path, manifest: Path) -> Path | None:
    """Where a walk to an output folder starts (`fsutil.open_dir`'s `root`): the manifest's
    project, else the current folder's, whichever holds `folder`; None (trust it as given)
    for a folder elsewhere, which only the user can name.

    Without git, a project is one folder, so `fsutil` alone would walk nothing below it: a
    cloned archive's planted `out` or `output` link would be followed.
    """
    folder = Path(os.path.abspath(folder))
    for base in (fsutil.project_root(Path(os.path.abspath(manifest)).parent),
                 fsutil.project_root(Path.cwd())):
        if folder.is_relative_to(base):
            return base
    return None


def default_output_dir(manifest: Path, taken: Mapping[Path, Path] | None = None) -> Path:
    """`<cwd>/output/<name>`, unless that folder is marked for another manifest (or is in
    `taken` for one: folder -> real path of the manifest)."""
    base = Path(os.path.abspath("output"))
    real = Path(os.path.realpath(manifest))
    candidates = (manifest.stem, f"{real.parent.name}-{manifest.stem}",
                  f"{manifest.stem}-{hashlib.sha256(str(real).encode()).hexdigest()[:8]}")
    for name in candidates:
        owner = (taken or {}).get(base / name) or owner_of(base / name)
        if owner is None or owner == real:
            return base / name
    return base / candidates[-1]


def owner_of(folder: Path) -> Path | None:
    """The manifest an output folder is marked for, if it is marked."""
    try:
        fd = os.open(folder / OWNER_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None  # unmarked (or unreadable: nothing to go by)
    try:
        text = os.read(fd, _MAX_OWNER_BYTES).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)
    return Path(os.path.realpath(folder / text)) if text else None


def claim_output_dir(folder: Path, manifest: Path, *, root: Path | None = None) -> None:
    """Mark `folder` (a default output folder) as `manifest`'s, creating it; refuses a folder
    marked for another manifest. Never follows a symlink planted at the mark, nor at a folder
    below `root` (see `fsutil.open_dir`)."""
    real = Path(os.path.realpath(manifest))
    mark = folder / OWNER_FILE
    try:
        make_dirs(folder, root=root)
        fd = open_file(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL, root=root)
    except FileExistsError:
        owner = owner_of(folder)
        if owner is not None and owner != real:
            raise StateError(f"{_shown(folder)} holds the videos of {_shown(owner)}; give "
                             f"{_shown(manifest)} its own output_dir") from None
        return
    except SymlinkRefused as exc:
        raise StateError(f"{_shown(Path(exc.filename))} is a symlink; octobatch never writes "
                         "through one: remove it") from None
    except OSError as exc:
        raise StateError(f"cannot write {_shown(mark)}: {exc.strerror}") from None
    try:
        os.write(fd, (os.path.relpath(real, os.path.realpath(folder)) + "\n").encode())
    finally:
        os.close(fd)


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
