"""Where a manifest's videos go: output_dir confined, same-named manifests kept apart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from engine_helpers import prompts_jobs

from octobatch.cli import main
from octobatch.errors import ManifestError
from octobatch.manifest import load_manifest, load_manifests
from octobatch.manifest.outputs import OWNER_FILE
from octobatch.simulator import Simulator

JOBS = "".join(f"  - {{id: {j['id']}, prompt: {j['prompt']}}}\n" for j in prompts_jobs(2))
HEAD = "version: 1\ndefaults: {model: omni-fast, seconds: 8, aspect_ratio: '16:9'}\n"



@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cloned project, used from a folder outside it."""
    (tmp_path / "repo" / "manifests").mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "repo"


def test_output_dir_stays_in_the_project_or_the_current_folder(repo: Path) -> None:
    path = repo / "manifests" / "m.yaml"
    path.write_text(HEAD + "output_dir: ../../elsewhere\njobs:\n" + JOBS)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert [str(d) for d in info.value.diagnostics] == [
        (f"{path}:3:13: output_dir: '../../elsewhere' is outside the manifest's project "
         "(../repo) and the current folder (pass --allow-outside-output to write there, or "
         "choose the folder with --output-dir)"),
    ]
    assert load_manifest(path, allow_outside_output=True).output_dir == repo.parent / "elsewhere"
    assert load_manifest(path, output_dir="../elsewhere").output_dir == repo.parent / "elsewhere"
    os.chdir(repo.parent / "elsewhere")  # the current folder may always be written
    assert load_manifest(path).output_dir == repo.parent / "elsewhere"
    os.chdir(repo.parent / "cwd")
    # Inside the project is fine, through a symlink that leaves it is not.
    path.write_text(HEAD + "output_dir: ../output/m\njobs:\n" + JOBS)
    assert load_manifest(path).output_dir == repo / "output" / "m"
    (repo / "manifests" / "out").symlink_to(repo.parent / "elsewhere")
    path.write_text(HEAD + "output_dir: out/m\njobs:\n" + JOBS)
    with pytest.raises(ManifestError, match="'out/m' is outside the manifest's project"):
        load_manifest(path)


def test_a_manifest_without_git_is_its_own_project(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    path = tmp_path / "a" / "b" / "m.yaml"
    path.write_text(HEAD + "output_dir: ../out\njobs:\n" + JOBS)
    with pytest.raises(ManifestError, match=r"'\.\./out' is outside the manifest's project"):
        load_manifest(path)


def test_run_refuses_before_any_request_and_the_flag_lifts_it(
        cli_sim: Simulator, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = repo / "manifests" / "m.yaml"
    path.write_text(HEAD + "output_dir: ../../elsewhere\njobs:\n" + JOBS)
    assert main(["run", str(path), "--poll-interval", "0.01"]) == 2
    assert "pass --allow-outside-output to write there" in capsys.readouterr().err
    assert cli_sim.requests == []
    assert main(["run", str(path), "--poll-interval", "0.01", "--allow-outside-output"]) == 0
    assert sorted(p.name for p in (repo.parent / "elsewhere").glob("*.mp4")) == [
        "clip-0.mp4", "clip-1.mp4"]


def test_same_named_manifests_get_their_own_default_folders(
        cli_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "spring.yaml").write_text(HEAD + "jobs:\n" + JOBS)
    # Loaded together, before either ran: already apart.
    folders = [m.output_dir for m in load_manifests(["a/spring.yaml", "b/spring.yaml"])]
    assert folders == [tmp_path / "output" / "spring", tmp_path / "output" / "b-spring"]
    assert main(["run", "b/spring.yaml", "--poll-interval", "0.01"]) == 0
    assert (tmp_path / "output" / "spring" / OWNER_FILE).read_text() == "../../b/spring.yaml\n"
    # b ran first, so the plain folder is b's from now on; a and c go beside it.
    assert main(["run", "a/spring.yaml", "c/spring.yaml", "--poll-interval", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "files in output/a-spring" in out and "files in output/c-spring" in out
    for folder in ("spring", "a-spring", "c-spring"):
        assert sorted(p.name for p in (tmp_path / "output" / folder).glob("*.mp4")) == [
            "clip-0.mp4", "clip-1.mp4"]
    assert load_manifest("b/spring.yaml").output_dir == tmp_path / "output" / "spring"
    assert main(["run", "b/spring.yaml", "--poll-interval", "0.01"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_a_symlink_planted_at_the_mark_is_refused(cli_sim: Simulator, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spring.yaml").write_text(HEAD + "jobs:\n" + JOBS)
    (tmp_path / "output" / "spring").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (tmp_path / "output" / "spring" / OWNER_FILE).symlink_to(victim)
    assert main(["run", "spring.yaml"]) == 1
    assert capsys.readouterr().err == (
        f"octobatch: output/spring/{OWNER_FILE} is a symlink; octobatch never writes through "
        "one: remove it\n")
    assert victim.read_text() == "keep me\n" and cli_sim.requests == []
