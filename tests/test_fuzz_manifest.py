"""Property: whatever a manifest file holds, loading it gives a Manifest or a ManifestError.

Random YAML documents built from manifest-like vocabulary, random mutations of the demo
manifest (structural and textual), and raw random text. On the textual inputs the CLI is run
too: it exits 0 or 2 and never reports an internal error.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from octobatch.cli import main
from octobatch.errors import ManifestError
from octobatch.manifest import load_manifest

REPO = Path(__file__).resolve().parent.parent
DEMO_TEXT = (REPO / "manifests" / "demo.yaml").read_text(encoding="utf-8")
DEMO = yaml.safe_load(DEMO_TEXT)

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

KEYS = ["version", "defaults", "settings", "output_dir", "jobs", "id", "matrix", "model",
        "prompt", "seconds", "size", "aspect_ratio", "resolution", "first_image_url",
        "last_image_url", "images", "video", "video_url", "input_video", "input_reference",
        "concurrency", "poll_interval", "timeout", "animal"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 100), st.floats(allow_nan=True),
    st.sampled_from(["omni-fast", "jimeng-video-3.0", "omni-fast-v2v", "16:9", "720p",
                     "assets/cat.png", "assets/clip.mp4", "../demo.yaml", "/etc/passwd",
                     "data:image/png;base64,AAAA", "https://example.com/a.png", "{animal}",
                     "{{", "x-{animal}", "", "5", "8", "1280x720", "\x00", "~/.ssh/id_rsa"]),
    st.text(max_size=12),
    st.just("9" * 5000),
    st.integers(min_value=10**20, max_value=10**30),
    st.dates(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=6),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of manifests/ so the demo's local assets resolve."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(REPO / "manifests", root / "manifests")
    return root / "manifests"


def check(directory: Path, content: str | bytes, *, cli: bool = False) -> None:
    """Loading gives a Manifest or a ManifestError; with `cli`, `validate` exits 0 or 2."""
    path = directory / "fuzz.yaml"
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    try:
        load_manifest(path)
    except ManifestError as exc:
        assert exc.diagnostics and all(str(d).startswith(str(path)) for d in exc.diagnostics)
    if not cli:
        return
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["validate", str(path)])
    assert code in (0, 2) and "internal error" not in stderr.getvalue(), stderr.getvalue()


def dump(document: Any) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(document, Dumper=dumper, allow_unicode=True, sort_keys=False)


@FUZZ
@given(document=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_random_documents(workdir: Path, document: dict[str, Any]) -> None:
    check(workdir, dump(document))


@FUZZ
@given(jobs=st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=7), max_size=5),
       defaults=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
def test_random_jobs(workdir: Path, jobs: list[Any], defaults: dict[str, Any]) -> None:
    check(workdir, dump({"version": 1, "defaults": defaults, "jobs": jobs}))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _paths(child, (*prefix, i))
    return found


@FUZZ
@given(data=st.data())
def test_structural_mutations_of_the_demo(workdir: Path, data: st.DataObject) -> None:
    document = yaml.safe_load(DEMO_TEXT)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = data.draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(KEYS))] = data.draw(VALUES)
        else:
            parent.append(data.draw(VALUES))
    check(workdir, dump(document))


@FUZZ
@given(data=st.data())
def test_text_mutations_of_the_demo(workdir: Path, data: st.DataObject) -> None:
    text = DEMO_TEXT
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 20))
        insert = data.draw(st.sampled_from([
            "", ":", "- ", "  ", "\n", "{", "[", "&a ", "*a", "\t", '"', "'", "<<: ", "#",
            "!!binary ", "!!int ", "!!float ", "!!timestamp ", "!!map ", "!!set ", "!custom ",
            "2020-13-45 ", "1" * 5000, "? ",
        ]))
        text = text[:at] + insert + text[at + cut:]
    check(workdir, text, cli=True)


@FUZZ
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_raw_content(workdir: Path, content: bytes | str) -> None:
    check(workdir, content, cli=True)
