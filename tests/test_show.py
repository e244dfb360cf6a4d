"""`octobatch show MANIFEST JOB`: what is recorded about one job and the request it sends."""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine_helpers import png_bytes

from octobatch.cli import main
from octobatch.manifest import load_manifest
from octobatch.simulator import DEMO_KEY
from octobatch.state import LockEntry, StateStore, Status


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "refs").mkdir()
    image = png_bytes() + bytes(3000)  # a real PNG header, padded: a long data URI
    (tmp_path / "refs" / "a.png").write_bytes(image)
    (tmp_path / "refs" / "cat.png").write_bytes(png_bytes())
    doc = {"version": 1, "output_dir": "out",
           "settings": {"currency": "USD", "prices": {"omni-fast": {"per_second": 0.05}}},
           "jobs": [
               {"id": "hero", "model": "omni-fast", "prompt": "A hero", "seconds": 8,
                "aspect_ratio": "16:9", "images": ["refs/a.png"]},
               {"id": "cat", "model": "jimeng-video-3.0", "prompt": "猫", "size": "1280x720",
                "input_reference": "refs/cat.png"},
           ]}
    path = tmp_path / "spring.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    job = load_manifest(path).jobs[0]
    store = StateStore.open(path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "hero.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    # Written before the take completed, as a run does (the recorded sha256 is made up).
    written = datetime(2026, 12, 1, 21, 0, 59, tzinfo=timezone.utc).timestamp()
    os.utime(tmp_path / "out" / "hero.mp4", (written, written))
    store.put("hero", LockEntry(spec_hash=job.spec_hash, model=job.model, spec=dict(job.canonical),
                                status=Status.COMPLETED, task_id="video_h1",
                                output="out/hero.mp4", bytes=112, sha256="ab" * 32, attempts=2,
                                idempotency_key="k-123", submitted_at="2026-12-01T21:00:00Z",
                                completed_at="2026-12-01T21:01:00Z"))
    store.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OCTOBATCH_BASE_URL", "http://127.0.0.1:9")
    return tmp_path


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["show", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == "" and DEMO_KEY not in out
    return out


def test_show_a_completed_json_job(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = show(capsys, "spring.yaml", "hero")
    head, request = out.split("\n\n")
    assert head == """\
job 'hero' of spring.yaml
  model      omni-fast
  status     completed
  task id    video_h1
  file       out/hero.mp4 (112 bytes)
  sha256     abababababababababababababababababababababababababababababababab
  attempts   2
  submitted  2026-12-01T21:00:00Z
  completed  2026-12-01T21:01:00Z
  error      -
  takes      -
  cost       0.40 USD per generation
  spent      0.00 USD
  next run   skip: up to date"""
    uri_length = len("data:image/png;base64,") + len(base64.b64encode(png_bytes() + bytes(3000)))
    assert request == f"""\
request: POST http://127.0.0.1:9/v1/videos
  Authorization: Bearer ***
  Idempotency-Key: k-123
  Content-Type: application/json
  {{
    "model": "omni-fast",
    "prompt": "A hero",
    "seconds": "8",
    "aspect_ratio": "16:9",
    "images": [
      "data:image/png;base64,iVBORw0KGgoAAAANSU...({uri_length:,} characters)"
    ]
  }}
"""


def test_show_a_new_multipart_job_as_json(project: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    details: dict[str, Any] = json.loads(show(capsys, "spring.yaml", "cat", "--json"))
    assert {k: details[k] for k in ("status", "task_id", "output", "attempts", "cost",
                                    "takes", "error")} == {
        "status": "new", "task_id": None, "output": None, "attempts": 0, "cost": None,
        "takes": [], "error": None}
    assert details["next_run"] == {"action": "submit", "reason": "new job"}
    assert details["request"] == {
        "method": "POST", "url": "http://127.0.0.1:9/v1/videos",
        "headers": {"Authorization": "Bearer ***",
                    "Idempotency-Key": "(a new key for the first submission)"},
        "content_type": "multipart/form-data",
        "form": {"model": "jimeng-video-3.0", "prompt": "猫", "size": "1280x720", "seconds": "5"},
        "files": [{"field": "input_reference", "filename": "cat.png",
                   "content_type": "image/png", "bytes": len(png_bytes())}],
    }


def test_an_unknown_job_gets_the_closest_id(project: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "spring.yaml", "hera"]) == 2
    assert capsys.readouterr().err == (
        "octobatch: spring.yaml: no job 'hera' in the manifest or its lockfile "
        "(did you mean 'hero'?)\n")
