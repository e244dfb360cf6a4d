"""Limits on what a manifest may ask for: exact messages, overrides, bounded memory."""

from __future__ import annotations

import base64
import tracemalloc
from pathlib import Path

import pytest

from octobatch.cli import main
from octobatch.errors import ManifestError, UsageError
from octobatch.manifest import load_manifest
from octobatch.manifest.limits import Limits


def errors_of(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, **kwargs)  # type: ignore[arg-type]
    return [str(d) for d in info.value.diagnostics]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("OCTOBATCH_MAX_JOBS", "OCTOBATCH_MAX_IMAGE_MB", "OCTOBATCH_MAX_PROMPT_CHARS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_tiny_manifest_cannot_expand_to_millions_of_jobs(here: Path) -> None:
    values = ", ".join(str(i) for i in range(1000))
    (here / "m.yaml").write_text(f"""\
version: 1
defaults: {{model: omni-fast, seconds: 8, aspect_ratio: "16:9"}}
jobs:
  - id: "a-{{x}}-{{y}}"
    prompt: "{{x}} {{y}}"
    matrix: {{x: [{values}], y: [{values}, 1000, 1001]}}
""")
    assert (here / "m.yaml").stat().st_size < 10_000
    assert errors_of(Path("m.yaml")) == [
        ("m.yaml:6:13: job 'a-{x}-{y}': matrix: expands to 1,002,000 jobs; at most 100,000 per "
         "manifest (split it over several manifests, or raise the limit with "
         "OCTOBATCH_MAX_JOBS)"),
    ]


def test_the_limit_counts_every_entry_and_can_be_raised(here: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (here / "m.yaml").write_text("""\
version: 1
defaults: {model: omni-fast, seconds: 8, aspect_ratio: "16:9"}
jobs:
  - {id: "a-{n}", prompt: "a {n}", matrix: {n: [1, 2, 3]}}
  - {id: "b-{n}", prompt: "b {n}", matrix: {n: [1, 2, 3]}}
""")
    monkeypatch.setenv("OCTOBATCH_MAX_JOBS", "5")
    assert errors_of(Path("m.yaml")) == [
        ("m.yaml:3:1: jobs: the entries expand to 6 jobs; at most 5 per manifest (split it over "
         "several manifests, or raise the limit with OCTOBATCH_MAX_JOBS)"),
    ]
    monkeypatch.setenv("OCTOBATCH_MAX_JOBS", "6")
    assert len(load_manifest("m.yaml").jobs) == 6


def test_a_huge_image_is_refused_without_reading_it(here: Path) -> None:
    with (here / "huge.png").open("wb") as f:  # 1 GB, sparse: costs no disk
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(1 << 30)
    (here / "m.yaml").write_text("version: 1\njobs:\n  - {id: a, model: jimeng-video-3.0, "
                                 "prompt: x, input_reference: huge.png}\n")
    tracemalloc.start()
    try:
        errors = errors_of(Path("m.yaml"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert errors == [
        ("m.yaml:3:66: job 'a': input_reference: 'huge.png' is 1024.0 MB; at most 20 MB allowed "
         "(make the image smaller, or raise the limit with OCTOBATCH_MAX_IMAGE_MB)"),
    ]
    assert peak < 20 << 20  # far less than the file: it was never read


def test_inline_images_and_prompts_have_limits_too(here: Path, tiny_images: dict[str, bytes],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    png = tiny_images["png"] + b"\0" * (1 << 20)
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    (here / "m.yaml").write_text(f"""\
version: 1
defaults: {{model: omni-fast, seconds: 8, aspect_ratio: "16:9"}}
jobs:
  - {{id: inline, prompt: x, first_image_url: "{uri}"}}
  - {{id: long, prompt: "{'word ' * 5000}"}}
""")
    monkeypatch.setenv("OCTOBATCH_MAX_IMAGE_MB", "1")
    monkeypatch.setenv("OCTOBATCH_MAX_PROMPT_CHARS", "20000")
    assert errors_of(Path("m.yaml")) == [
        ("m.yaml:4:46: job 'inline': first_image_url: the data URI holds more than 1 MB (make "
         "the image smaller, or raise the limit with OCTOBATCH_MAX_IMAGE_MB)"),
        ("m.yaml:5:24: job 'long': prompt: is 25,000 characters long; at most 20,000 allowed "
         "(shorten it, or raise the limit with OCTOBATCH_MAX_PROMPT_CHARS)"),
    ]
    limits = Limits(image_bytes=2 << 20, prompt_chars=25_000)
    assert [job.id for job in load_manifest("m.yaml", limits=limits).jobs] == ["inline", "long"]


def test_a_bad_override_is_a_usage_error(here: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OCTOBATCH_MAX_IMAGE_MB", "lots")
    with pytest.raises(UsageError):
        Limits.from_env()
    (here / "m.yaml").write_text("version: 1\njobs: []\n")
    assert main(["validate", "m.yaml"]) == 2
    assert capsys.readouterr().err == (
        "octobatch: OCTOBATCH_MAX_IMAGE_MB must be a whole number of at least 1 (megabytes), "
        "got 'lots'\n")


def test_ids_must_fit_in_a_file_name(here: Path) -> None:
    ok, long = "a" * 245, "b" * 246
    (here / "m.yaml").write_text(f"""\
version: 1
defaults: {{model: jimeng-video-3.0}}
jobs:
  - {{id: {ok}, prompt: fits}}
  - {{id: {long}, prompt: too long}}
""")
    assert errors_of(Path("m.yaml")) == [
        (f"m.yaml:5:10: job '{long}': id: the id is 246 characters long; at most 245 fit in a file "
         "name (a download is saved as .<id>.mp4.part, and a file name holds at most 255 bytes; "
         "shorten it)"),
    ]
    (here / "m.yaml").write_text(f"version: 1\njobs:\n  - {{id: {ok}, model: jimeng-video-3.0, "
                                 "prompt: x}\n")
    [job] = load_manifest("m.yaml").jobs
    assert len(f".{job.id}.mp4.part".encode()) == 255
