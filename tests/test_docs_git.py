"""Git workflow (docs/git.md): the pre-commit hook runs the real CLI, the documented config works."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GIT_DOC = ROOT / "docs" / "git.md"

GOOD = """\
version: 1
jobs:
  - id: fox
    model: omni-fast
    prompt: A red fox in snow
    seconds: 8
    aspect_ratio: "16:9"
"""
BAD = """\
version: 1
jobs:
  - id: cat
    model: jimeng-video-3.0
    prompt: A cat
    size: 1920x1080
"""


@pytest.fixture(scope="module")
def hook() -> dict[str, Any]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (found,) = [h for h in hooks if h["id"] == "octobatch-validate"]
    return dict(found)


def _hook_command(hook: dict[str, Any]) -> list[str]:
    """The hook's entry as pre-commit would run it: the console script from the install."""
    argv = shlex.split(hook["entry"])
    bin_dir = Path(sys.executable).parent
    script = shutil.which(argv[0], path=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert script, f"the `{argv[0]}` console script is not installed (pip install -e .)"
    return [script, *argv[1:]]


def test_hook_is_a_python_hook_on_manifest_files(hook: dict[str, Any]) -> None:
    assert hook["language"] == "python"
    assert shlex.split(hook["entry"]) == ["octobatch", "validate"]
    files = re.compile(hook["files"])
    assert files.search("manifests/spring.yaml") and files.search("video/manifests/a.yml")
    assert not files.search("manifests/spring.lock.json")
    assert not files.search("config/settings.yaml")


def _run_hook(hook: dict[str, Any], cwd: Path, *files: str) -> subprocess.CompletedProcess[str]:
    # pre-commit appends the staged file names, relative to the repository root.
    return subprocess.run(
        [*_hook_command(hook), *files], check=False, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_hook_passes_a_good_manifest_and_blocks_a_bad_one(
    hook: dict[str, Any], tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "good.yaml").write_text(GOOD, encoding="utf-8")
    (manifests / "bad.yaml").write_text(BAD, encoding="utf-8")

    good = _run_hook(hook, tmp_path, "manifests/good.yaml")
    assert good.returncode == 0, good.stderr

    bad = _run_hook(hook, tmp_path, "manifests/good.yaml", "manifests/bad.yaml")
    assert bad.returncode == 2
    assert "manifests/bad.yaml:6:" in bad.stderr and "job 'cat'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_documented_pre_commit_configs_use_the_hook(hook: dict[str, Any]) -> None:
    text = GIT_DOC.read_text(encoding="utf-8")
    configs = re.findall(r"```yaml\n(# \.pre-commit-config\.yaml\n.*?)```", text, re.DOTALL)
    assert len(configs) == 2  # the published hook, and the local variant
    for config in configs:
        (repo,) = yaml.safe_load(config)["repos"]
        (documented,) = repo["hooks"]
        assert documented["id"] == hook["id"]
        if repo["repo"] == "local":  # spelled out in full: must match the published hook
            assert documented["entry"] == hook["entry"]
            assert documented["files"] == hook["files"]


def test_documented_gitignore_lines_are_the_projects_own() -> None:
    text = GIT_DOC.read_text(encoding="utf-8")
    (block,) = re.findall(r"```gitignore\n(.*?)```", text, re.DOTALL)
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    lines = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert lines == ["*.lock.journal", "*.lock.run"]
    assert all(line in ignored for line in lines)
