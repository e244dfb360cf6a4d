"""`octobatch validate` and `octobatch plan` as users run them."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from octobatch.cli import main
from octobatch.manifest import load_manifest
from octobatch.state import LockEntry, LockState, Status, write_lockfile

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "manifests"


def run_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "octobatch", *argv], check=False, cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60)


def test_validate_ok_prints_a_summary_per_file(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate", "manifests/demo.yaml", "manifests/example.yaml"]) == 0
    assert capsys.readouterr().out == (
        "manifests/demo.yaml: OK, 12 jobs (7 omni-fast, 1 omni-fast-v2v, 1 jimeng-video-3.0, "
        "1 jimeng-video-2.0, 1 doubao-seedance-1-5-pro_720p, 1 sora-2)\n"
        "manifests/example.yaml: OK, 6 jobs (5 omni-fast, 1 jimeng-video-3.0)\n"
    )


def test_validate_reports_all_files_and_exits_2(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code = main(["validate", "tests/fixtures/manifests/common-mistakes.yaml",
                 "manifests/demo.yaml", "tests/fixtures/manifests/bad-yaml.yaml"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out.startswith("manifests/demo.yaml: OK")
    lines = err.splitlines()
    assert lines[0] == ("tests/fixtures/manifests/common-mistakes.yaml:10:11: job 'cat': size: "
                        "'1920x1080' is not one of '720x1280', '1280x720'")
    assert lines[-2].startswith("tests/fixtures/manifests/bad-yaml.yaml:6:1: invalid YAML")
    assert lines[-1] == "9 errors found"


def test_validate_a_glob_skips_state_files_and_a_folder_means_its_manifests(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    for name in ("demo.lock.json", "demo.lock.journal", "demo.lock.run"):
        (tmp_path / "manifests" / name).write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    every = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "manifests").iterdir())
    assert main(["validate", *every]) == 0  # what the shell makes of `manifests/*`
    demo_ok = ("manifests/demo.yaml: OK, 12 jobs (7 omni-fast, 1 omni-fast-v2v, "
               "1 jimeng-video-3.0, 1 jimeng-video-2.0, 1 doubao-seedance-1-5-pro_720p, "
               "1 sora-2)")
    example_ok = "manifests/example.yaml: OK, 6 jobs (5 omni-fast, 1 jimeng-video-3.0)"
    assert capsys.readouterr().out.splitlines() == [
        "manifests/assets: skipped: a folder without manifests (*.yaml, *.yml) in it",
        ("manifests/demo.lock.journal: skipped: the journal (octobatch's log of the runs of "
         "demo.yaml), not a manifest"),
        ("manifests/demo.lock.json: skipped: the lockfile (octobatch's record of the jobs of "
         "demo.yaml), not a manifest"),
        "manifests/demo.lock.run: skipped: the run lock of demo.yaml, not a manifest",
        demo_ok,
        example_ok,
    ]
    assert main(["validate", "manifests"]) == 0
    assert capsys.readouterr().out.splitlines() == [demo_ok, example_ok]
    # Given alone, a lockfile validates nothing; given to run, it is a manifest error.
    assert main(["validate", "manifests/demo.lock.json"]) == 2
    out, err = capsys.readouterr()
    assert err == "octobatch: no manifest to validate in manifests/demo.lock.json\n"
    assert main(["run", "--simulate", "manifests/demo.lock.json"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        ("manifests/demo.lock.json: the lockfile (octobatch's record of the jobs of demo.yaml), "
         "not a manifest (give the manifest, demo.yaml)"),
        "1 error found",
    ]


def test_allow_outside_files_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(FIXTURES / "assets" / "cat.png", tmp_path / "cat.png")
    (tmp_path / "sub").mkdir()
    manifest = tmp_path / "sub" / "m.yaml"
    manifest.write_text("version: 1\njobs:\n  - {id: a, model: jimeng-video-3.0, prompt: x, "
                        "input_reference: ../cat.png}\n")
    assert main(["validate", str(manifest)]) == 2
    assert "pass --allow-outside-files" in capsys.readouterr().err
    assert main(["validate", "--allow-outside-files", str(manifest)]) == 0


def test_bad_input_never_prints_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "garbage.yaml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "types.yaml").write_text(
        "version: [1]\ndefaults: 3\nsettings: []\njobs:\n  - {matrix: 5, id: 7}\n  - [x]\n"
        "  - {model: {a: 1}, prompt: {b: 2}, images: 9}\n")
    (tmp_path / "tabs.yaml").write_text("version: 1\n\tjobs: []\n")
    (tmp_path / "dir.yaml").mkdir()
    names = ["empty.yaml", "garbage.yaml", "list.yaml", "types.yaml", "tabs.yaml", "dir.yaml",
             "missing.yaml"]
    result = run_cli("validate", *names, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    for name in names:
        assert f"{name}" in result.stderr
    result = run_cli("plan", "garbage.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def _lock(manifest: Path, state: dict[str, LockEntry]) -> None:
    write_lockfile(manifest.with_name(manifest.stem + ".lock.json"),
                   LockState(manifest.name, state))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A manifest with a lockfile in every interesting state, and one finished MP4."""
    manifest = tmp_path / "spring.yaml"
    manifest.write_text("""\
version: 1
defaults: {model: omni-fast, seconds: 8, aspect_ratio: "16:9"}
output_dir: out
jobs:
  - {id: new, prompt: a}
  - {id: done, prompt: b}
  - {id: lost, prompt: c}
  - {id: running, prompt: d}
  - {id: changed, prompt: e2}
  - {id: broken, prompt: f}
  - {id: maybe, model: jimeng-video-3.0, prompt: g}
""")
    jobs = {j.id: j for j in load_manifest(manifest).jobs}

    def entry(job_id: str, status: Status, **kw: object) -> LockEntry:
        spec = jobs[job_id]
        return LockEntry(spec.spec_hash, spec.model, status, spec=dict(spec.canonical),
                         **kw)  # type: ignore[arg-type]

    changed = entry("changed", Status.COMPLETED, bytes=3, output="out/changed.mp4")
    changed = dataclasses.replace(changed, spec_hash="0" * 64, spec={**changed.spec, "prompt": "e1"})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "done.mp4").write_bytes(b"mp4")
    _lock(manifest, {
        "done": entry("done", Status.COMPLETED, bytes=3, output="out/done.mp4", task_id="t1"),
        "lost": entry("lost", Status.COMPLETED, bytes=3, output="out/lost.mp4", task_id="t2"),
        "running": entry("running", Status.RUNNING, task_id="video_7"),
        "changed": changed,
        "broken": entry("broken", Status.FAILED, error={"code": "x", "message": "policy"}),
        "maybe": entry("maybe", Status.SUBMITTING),
        "old": LockEntry("1" * 64, "omni-fast", Status.COMPLETED),
    })
    return tmp_path


def test_plan_groups_steps_with_reasons_and_totals(project: Path) -> None:
    result = run_cli("plan", "spring.yaml", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == """\
plan for spring.yaml (lockfile spring.lock.json, output out)

submit (1)
  new      omni-fast           8s  new job

regenerate (1)
  changed  omni-fast           8s  changed: prompt

uncertain (1)
  maybe    jimeng-video-3.0    5s  a submission may have created a task; possible duplicate

poll (1)
  running  omni-fast           8s  running at the provider (task video_7)

download (1)
  lost     omni-fast           8s  completed, but the file is missing

failed (1)
  broken   omni-fast           8s  failed: policy; use --retry-failed to resubmit

skip (1)
  done     omni-fast           8s  up to date

orphan (1)
  old      omni-fast            -  not in the manifest; kept until run --prune

jobs: 8 (submit 1, regenerate 1, uncertain 1, poll 1, download 1, failed 1, skip 1, orphan 1)
video to generate: jimeng-video-3.0 5s, omni-fast 16s
jobs that will cost money: 3
total cost: unpriced (3 jobs; add settings.prices, see docs/manifest.md); already spent: 0.00
"""


def test_plan_json(project: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    assert main(["plan", "spring.yaml", "--json", "--retry-failed", "--output-dir", "x"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["output_dir"] == str(project / "x")
    steps = {s["id"]: s for s in document["steps"]}
    assert steps["broken"]["action"] == "retry"
    assert steps["changed"] == {"id": "changed", "action": "regenerate", "model": "omni-fast",
                                "reason": "changed: prompt", "seconds": 8,
                                "changed": ["prompt"], "takes": 1, "cost": None}
    assert document["totals"] == {
        "jobs": 8,
        "actions": {"submit": 1, "poll": 1, "download": 1, "skip": 1, "regenerate": 1,
                    "retry": 1, "uncertain": 1, "orphan": 1},
        "seconds_by_model": {"omni-fast": 24, "jimeng-video-3.0": 5},
        "costly_jobs": 4,
        "takes": 4,
    }


def run_in_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run the CLI with stdout on a real pseudo-terminal; returns what it wrote."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "octobatch", *argv], cwd=cwd, env=env,
                               stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_plan_colour_only_on_a_terminal_without_no_color(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = str(REPO)
    coloured = run_in_terminal(["plan", "spring.yaml"], project, env)
    assert "\x1b[32msubmit (1)\x1b[0m" in coloured and "\x1b[31mfailed (1)\x1b[0m" in coloured
    plain = run_in_terminal(["plan", "spring.yaml"], project, {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain and "submit (1)" in plain
    piped = subprocess.run([sys.executable, "-m", "octobatch", "plan", "spring.yaml"],
                           check=False, cwd=project, env=env, capture_output=True,
                           text=True, timeout=60)
    assert "\x1b[" not in piped.stdout and "submit (1)" in piped.stdout
