"""What the symlink tests plant and check: a precious file outside the project (the victim),
links to it, and the exact refusal octobatch gives."""

from __future__ import annotations

from pathlib import Path

PRECIOUS = b"the user's own file\n"


def refusal(link: Path | str) -> str:
    return (f"{link} is a symbolic link, and octobatch never writes through one (a cloned "
            "repository can plant one to reach files elsewhere); remove it")


def make_victim(tmp_path: Path) -> Path:
    """`~/.bashrc` of a home folder beside the project (the `victim` fixture)."""
    outside = tmp_path / "home"
    outside.mkdir()
    path = outside / ".bashrc"
    path.write_bytes(PRECIOUS)
    return path


def plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def assert_untouched(victim: Path) -> None:
    """The victim keeps its bytes, and nothing new appeared beside it."""
    assert victim.read_bytes() == PRECIOUS
    assert sorted(p.name for p in victim.parent.iterdir()) == [victim.name]
