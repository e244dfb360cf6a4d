"""Symlinks planted in a cloned project where octobatch writes or locks: refused, target untouched.

Each test builds a git work tree (the project) with a manifest, plants a symlink that points
outside it, and shows that the file outside keeps its bytes and the message names the link.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from planted import PRECIOUS, assert_untouched, plant, refusal

from octobatch.errors import OctobatchError, StateError
from octobatch.fsutil import SymlinkRefused, atomic_write, make_dirs, open_file, project_root
from octobatch.gallery import write_gallery
from octobatch.manifest import load_manifest
from octobatch.state import (
    LockEntry,
    LockState,
    StateStore,
    journal_path_for,
    load_state,
    lock_path_for,
    run_lock_path_for,
    write_lockfile,
)

REPO = Path(__file__).resolve().parents[1]
MANIFEST = """\
version: 1
defaults: {model: omni-fast, seconds: 8, aspect_ratio: "16:9"}
output_dir: out
jobs:
  - {id: clip-0, prompt: waves at dawn}
  - {id: clip-1, prompt: a cat in the snow}
"""



@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "cloned"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "spring.yaml").write_text(MANIFEST)
    return root





def test_project_root_is_the_git_work_tree_else_the_folder(project: Path, tmp_path: Path) -> None:
    (project / "a" / "b").mkdir(parents=True)
    assert project_root(project / "a" / "b") == project
    (tmp_path / "plain").mkdir()
    assert project_root(tmp_path / "plain") == tmp_path / "plain"


@pytest.mark.parametrize("what", ["lockfile", "journal", "run lock"])
def test_a_symlinked_state_file_is_refused(project: Path, victim: Path, what: str) -> None:
    manifest = project / "spring.yaml"
    lock = lock_path_for(manifest)
    link = {"lockfile": lock, "journal": journal_path_for(lock),
            "run lock": run_lock_path_for(lock)}[what]
    plant(link, victim)
    with pytest.raises(StateError) as info:
        StateStore.open(manifest)
    action = {"lockfile": "cannot read lockfile", "journal": "cannot read journal",
              "run lock": "cannot create the run lock"}[what]
    assert str(info.value) == f"{link}: {action}: {refusal(link)}"
    if what != "run lock":  # readers (plan, status) refuse the same way
        with pytest.raises(StateError, match="is a symbolic link"):
            load_state(manifest)
    assert_untouched(victim)
    link.unlink()
    StateStore.open(manifest).close()  # once the link is gone, the run goes on


def test_a_symlink_at_the_lockfile_temp_is_removed_not_followed(project: Path, victim: Path) -> None:
    manifest = project / "spring.yaml"
    lock = lock_path_for(manifest)
    temp = lock.with_name(".spring.lock.json.tmp")
    plant(temp, victim)
    store = StateStore.open(manifest)
    assert not os.path.lexists(temp)
    store.put("cat", LockEntry(spec_hash="h", model="omni-fast"))
    plant(temp, victim)  # planted again mid-run: the compaction still does not follow it
    store.close()
    assert load_state(manifest).jobs["cat"].spec_hash == "h"
    assert not lock.is_symlink() and not os.path.lexists(temp)
    assert_untouched(victim)


def test_a_symlinked_folder_inside_the_project_is_refused(project: Path, tmp_path: Path) -> None:
    # `manifests -> elsewhere`: a manifest found through it would put its state elsewhere.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "spring.yaml").write_text(MANIFEST)
    plant(project / "manifests", elsewhere)
    with pytest.raises(StateError) as info:
        StateStore.open(project / "manifests" / "spring.yaml")
    assert refusal(project / "manifests") in str(info.value)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["spring.yaml"]


def test_write_lockfile_refuses_a_symlink(project: Path, victim: Path) -> None:
    lock = project / "spring.lock.json"
    plant(lock, victim)
    with pytest.raises(StateError, match="cannot read lockfile: .* is a symbolic link"):
        write_lockfile(lock, LockState("spring.yaml", {}))
    assert_untouched(victim)


def test_an_alias_of_a_manifest_takes_the_same_run_lock(project: Path) -> None:
    manifest = project / "spring.yaml"
    alias = project / "alias.yaml"
    alias.symlink_to("spring.yaml")
    store = StateStore.open(manifest)
    try:
        with pytest.raises(StateError) as info:
            StateStore.open(alias)
        assert str(info.value) == (
            f"another octobatch run is already using {alias} (pid {os.getpid()}, the same file "
            f"as {manifest}); wait for it to finish or stop it")
    finally:
        store.close()
    StateStore.open(alias).close()
    assert not (project / "alias.lock.run").exists()


def test_the_gallery_is_never_written_through_a_symlink(project: Path, victim: Path,
                                                        tmp_path: Path) -> None:
    manifest = load_manifest(project / "spring.yaml")
    page = project / "out" / "index.html"
    plant(page, victim)
    with pytest.raises(OctobatchError) as info:
        write_gallery(manifest, LockState("spring.yaml"))
    assert str(info.value) == f"cannot write the gallery {page}: {refusal(page)}"
    assert_untouched(victim)
    # The output folder itself a link out of the project: nothing lands at its target.
    page.unlink()
    (project / "out").rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plant(project / "out", elsewhere)
    with pytest.raises(OctobatchError, match="is a symbolic link"):
        write_gallery(manifest, LockState("spring.yaml"))
    assert list(elsewhere.iterdir()) == []


def test_shared_outputs_are_0644_under_the_usual_umask(project: Path) -> None:
    manifest = load_manifest(project / "spring.yaml")
    old = os.umask(0o022)
    try:
        page = write_gallery(manifest, LockState("spring.yaml"))
        StateStore.open(project / "spring.yaml").close()
        write_lockfile(lock_path_for(project / "spring.yaml"), LockState("spring.yaml", {
            "a": LockEntry(spec_hash="h", model="m")}))
        os.umask(0o077)  # a stricter umask is respected
        atomic_write(project / "private.txt", b"x")
    finally:
        os.umask(old)
    assert page.stat().st_mode & 0o777 == 0o644
    assert lock_path_for(project / "spring.yaml").stat().st_mode & 0o777 == 0o644
    assert (project / "private.txt").stat().st_mode & 0o777 == 0o600


def test_fsutil_refuses_fifos_and_creates_folders_without_following_links(
    project: Path, tmp_path: Path
) -> None:
    os.mkfifo(project / "journal")  # opening it for writing would block the run forever
    with pytest.raises(OSError, match="is not a regular file"):
        open_file(project / "journal", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plant(project / "out", elsewhere)
    with pytest.raises(SymlinkRefused):
        make_dirs(project / "out" / "a" / "b")
    assert list(elsewhere.iterdir()) == []
    make_dirs(project / "real" / "a" / "b")
    assert (project / "real" / "a" / "b").is_dir()


def run_simulated(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OCTOBATCH_SIMULATE_LATENCY": "0.05"}
    env.pop("OCTOPUSX_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "octobatch", "run", "spring.yaml", "--simulate",
         "--poll-interval", "0.02"],
        check=False, cwd=project, env=env, capture_output=True, text=True, timeout=60)


def test_run_simulate_refuses_a_planted_journal_link_before_paying(project: Path,
                                                                   victim: Path) -> None:
    journal = journal_path_for(lock_path_for(project / "spring.yaml"))
    plant(journal, victim)
    done = run_simulated(project)
    assert done.returncode == 1, done.stderr
    name = journal.name  # the run was given a relative path
    assert done.stderr == f"octobatch: {name}: cannot read journal: {refusal(Path(name))}\n"
    assert_untouched(victim)
    # Refused before any submission: no video, no lockfile.
    assert not list(project.glob("out/*.mp4")) and not lock_path_for(project / "spring.yaml").exists()


def test_run_simulate_never_writes_a_download_through_a_link(project: Path, victim: Path,
                                                             tmp_path: Path) -> None:
    second = tmp_path / "home" / "notes.txt"
    second.write_bytes(PRECIOUS)
    plant(project / "out" / ".clip-0.mp4.part", victim)
    plant(project / "out" / "clip-1.mp4", second)
    done = run_simulated(project)
    assert done.returncode == 1, done.stderr
    assert victim.read_bytes() == PRECIOUS and second.read_bytes() == PRECIOUS
    state = load_state(project / "spring.yaml")
    entry = state.jobs["clip-0"]
    assert entry.task_id and entry.status.value != "completed", entry  # the task is kept
    # A link at a job's own name is seen by the plan: nothing is paid for a video that could
    # not be placed.
    assert "clip-1" not in state.jobs
    assert "clip-1.mp4 is a symbolic link" in done.stdout + done.stderr


def test_init_never_writes_through_a_symlink(project: Path, victim: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from octobatch.cli import main

    link = project / "new.yaml"
    plant(link, victim)
    assert main(["init", str(link), "--force"]) == 2
    assert f"{link}: cannot write: {refusal(link)}" in capsys.readouterr().err
    assert_untouched(victim)
