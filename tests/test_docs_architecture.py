"""docs/architecture.md names every module of the package, and nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "octobatch"
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _modules() -> set[str]:
    """Top-level modules (`plan.py`) and packages (`engine/`), and the modules inside them
    (one module per subcommand in `commands/` is the rule the doc states, not a list)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("__init__.py", "__main__.py") or path.parent.name == "commands":
            continue
        names.add(path.name)
    names.update(f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    return names


def test_every_module_and_package_is_described() -> None:
    missing = sorted(name for name in _modules()
                     if not re.search(rf"`(?:[\w/]+/)?{re.escape(name)}`", DOC))
    assert not missing, f"docs/architecture.md does not describe: {', '.join(missing)}"


def test_every_named_module_exists() -> None:
    named = set(re.findall(r"`(?!tests/)(?:[\w/]+/)?(\w+\.py)`", DOC))
    existing = {p.name for p in PACKAGE.rglob("*.py")}
    assert named - existing == set(), f"named but absent: {sorted(named - existing)}"
