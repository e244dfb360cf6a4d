"""docs/security.md names a test for each guarantee: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `test_file.py::test_name` starts a file; a bare `test_name` after it belongs to that file.
_NAME = re.compile(r"`(test_\w+\.py)(?:::(test_\w+))?`|`(test_\w+)`")


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_the_security_page_names_exists() -> None:
    text = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
    named: list[tuple[str, str | None]] = []
    current: str | None = None
    for file, name, bare in _NAME.findall(text):
        if file:
            current = file
            named.append((file, name or None))
        elif current is not None:
            named.append((current, bare))
    assert len(named) > 50
    missing = []
    for file, name in named:
        path = REPO / "tests" / file
        if not path.is_file():
            missing.append(file)
        elif name is not None and name not in functions_in(path):
            missing.append(f"{file}::{name}")
    assert missing == []
