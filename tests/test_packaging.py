"""The built wheel works on its own: schemas shipped inside it, console script installed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parent.parent


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{argv}\n{result.stdout}\n{result.stderr}"
    return result


def build_wheel(out: Path) -> Path:
    # Without build isolation when the backend is already installed: no download, well under
    # a second. Otherwise `build` fetches the backend into an isolated environment.
    isolation = ["--no-isolation"] if importlib.util.find_spec("hatchling") else []
    out.mkdir()
    run(sys.executable, "-m", "build", "--wheel", *isolation, "--outdir", out, REPO, cwd=out)
    [wheel] = out.glob("octobatch-*.whl")
    return wheel


def test_installed_wheel_validates_a_manifest(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:  # the gallery page inlines these
        assert {"octobatch/gallery/static/gallery.css", "octobatch/gallery/static/gallery.js"} <= set(
            archive.namelist())
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=tmp_path).stdout.strip())
    # The runtime dependencies come from this interpreter (no download). The .pth line is
    # appended after the venv's own site-packages, so the installed wheel is what imports.
    deps = {Path(m.__file__).resolve().parent.parent for m in (yaml, jsonschema)}
    (site / "_test_deps.pth").write_text("\n".join(map(str, sorted(deps))) + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--quiet", wheel, cwd=tmp_path)

    work = tmp_path / "work"  # not the source tree: nothing can import from the checkout
    work.mkdir()
    shutil.copytree(REPO / "manifests", work / "manifests")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = run(python, "-c", "import octobatch, octobatch.schemas as s; "
                "print(octobatch.__file__); print(s.default_schema_dir())", cwd=work, env=env)
    module, schema_dir = where.stdout.split()
    assert Path(module).is_relative_to(site) and Path(schema_dir) == site / "octobatch" / "schemas"

    result = run(venv / "bin" / "octobatch", "validate", "manifests/demo.yaml", cwd=work, env=env)
    assert result.stdout.startswith("manifests/demo.yaml: OK, 12 jobs")
