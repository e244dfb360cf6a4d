"""Symlinks planted in the output folder and the editor schema folder: refused, target untouched.

The paths the state files do not cover (tests/test_symlinks.py has those): the download's
resume note, the files earlier takes move to, the write-check probe, the default output folder
of a project without git, the review's take swap and `octobatch schema`'s folder. Each test
plants a link to a file (or folder) outside and shows that it keeps its bytes, the message
names the link, and a paid task is kept for the rerun.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from engine_helpers import prompts_jobs, run_engine, submits, write_manifest
from planted import assert_untouched, refusal
from reviewed_project import build_project, clip

from octobatch.cli import main
from octobatch.download import check_output_dir
from octobatch.errors import OctobatchError, StateError
from octobatch.fsutil import SymlinkRefused
from octobatch.gallery.review import ReviewError, ReviewRequest, record_review
from octobatch.gallery.server import ReviewConfig, serve
from octobatch.simulator import DEMO_KEY, Faults, Simulator
from octobatch.state import LockEntry, Status, Take, load_state
from octobatch.takes import keep_earlier_takes


def project(tmp_path: Path, jobs: list[dict[str, Any]]) -> Path:
    folder = tmp_path / "cloned"
    (folder / "out").mkdir(parents=True)
    return write_manifest(folder, jobs)


# -- the download's resume note ----------------------------------------------------------------

async def test_a_symlink_at_the_resume_note_is_refused_and_the_task_kept(
        make_simulator: Any, tmp_path: Path, victim: Path) -> None:
    # A cut transfer writes `.<id>.mp4.part.json` so a later run can resume: never through a
    # link. The job stays unfinished with its task; once the link is gone the rerun completes.
    sim = await make_simulator(video_bytes=300_000, faults=Faults(download_truncate_first=1))
    manifest = project(tmp_path, prompts_jobs(1))
    note = manifest.parent / "out" / ".clip-0.mp4.part.json"
    note.symlink_to(victim)
    outcome = await run_engine(sim, manifest)
    (unfinished,) = outcome.named("unfinished")
    assert unfinished.task_id and unfinished.reason == (
        f"cannot write {note}: {refusal(note)} (the task is kept; the rerun downloads it "
        "without paying again)")
    assert_untouched(victim)
    note.unlink()
    again = await run_engine(sim, manifest)
    assert again.result.ok and len(submits(sim)) == 1
    assert again.state.jobs["clip-0"].task_id == unfinished.task_id


# -- the files earlier takes move to -----------------------------------------------------------

def set_takes(path: Path, takes: int) -> None:
    doc = yaml.safe_load(path.read_text())
    doc["jobs"][0]["takes"] = takes
    path.write_text(yaml.safe_dump(doc))


async def test_a_symlink_where_an_earlier_take_moves_is_refused_and_the_task_kept(
        make_simulator: Any, tmp_path: Path, victim: Path) -> None:
    # Take 2 arrives: take 1 moves from `clip-0.mp4` to `clip-0.take1.mp4`. A link there would
    # bury take 1 (a rename replaces the link) or, kept, pass for take 1 in the gallery.
    sim = await make_simulator()
    manifest = project(tmp_path, prompts_jobs(1))
    assert (await run_engine(sim, manifest)).result.ok
    out = manifest.parent / "out"
    first = (out / "clip-0.mp4").read_bytes()
    set_takes(manifest, 2)
    link = out / "clip-0.take1.mp4"
    link.symlink_to(victim)
    outcome = await run_engine(sim, manifest)
    # The plan sees it: take 2 is not paid for while take 1 has nowhere to go.
    (unfinished,) = outcome.named("unfinished")
    assert unfinished.task_id == outcome.state.jobs["clip-0"].task_id
    assert "clip-0.take1.mp4, which holds a file octobatch did not write" in unfinished.reason
    assert len(submits(sim)) == 1
    assert_untouched(victim)
    assert link.is_symlink() and (out / "clip-0.mp4").read_bytes() == first
    link.unlink()
    again = await run_engine(sim, manifest)
    assert again.result.ok and len(submits(sim)) == 2
    entry = again.state.jobs["clip-0"]
    assert [t.output for t in entry.take_history()] == ["out/clip-0.take1.mp4", "out/clip-0.mp4"]
    assert (out / "clip-0.take1.mp4").read_bytes() == first


def test_a_symlink_at_the_current_take_is_not_moved_aside(tmp_path: Path, victim: Path) -> None:
    # Moving it aside would record the link as take 1 (a rename moves the link itself).
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat.mp4").symlink_to(victim)
    entry = LockEntry(spec_hash="h1", model="omni-fast", status=Status.RUNNING, task_id="t2",
                      takes=(Take(1, "t1", "out/cat.mp4", "0" * 64, 10, "h1", "2026"),))
    with pytest.raises(SymlinkRefused) as info:
        keep_earlier_takes(entry, out / "cat.mp4", tmp_path)
    assert str(info.value) == refusal(out / "cat.mp4")
    assert (out / "cat.mp4").is_symlink() and not os.path.lexists(out / "cat.take1.mp4")
    assert_untouched(victim)
    # And a link where the take would move to (planted after the plan looked): refused too.
    (out / "cat.mp4").unlink()
    (out / "cat.mp4").write_bytes(b"take 1")
    (out / "cat.take1.mp4").symlink_to(victim)
    with pytest.raises(SymlinkRefused) as info:
        keep_earlier_takes(entry, out / "cat.mp4", tmp_path)
    assert str(info.value) == refusal(out / "cat.take1.mp4")
    assert (out / "cat.mp4").read_bytes() == b"take 1"
    assert_untouched(victim)


# -- the write-check probe and the default output folder ----------------------------------------

async def test_a_symlink_at_the_write_check_probe_stops_the_run_before_paying(
        make_simulator: Any, tmp_path: Path, victim: Path) -> None:
    sim = await make_simulator()
    manifest = project(tmp_path, prompts_jobs(1))
    probe = manifest.parent / "out" / f".octobatch-write-check-{os.getpid()}"
    probe.symlink_to(victim)
    message = (f"cannot write to the output folder {probe.parent}: {refusal(probe)}; nothing "
               "was submitted")
    with pytest.raises(OctobatchError) as info:
        check_output_dir(probe.parent)
    assert str(info.value) == message
    with pytest.raises(OctobatchError) as info:
        await run_engine(sim, manifest)  # this process's pid: the run's own probe name
    assert str(info.value) == message
    assert sim.requests == [] and not load_state(manifest).jobs
    assert_untouched(victim)


def test_the_default_output_folder_is_never_reached_through_a_symlink(
        simulator_thread: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A folder without git (an unpacked archive keeps symlinks too): `output` is octobatch's
    # choice of folder, so a link there is refused, not followed to `elsewhere/<name>`.
    sim: Simulator = simulator_thread()
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OCTOBATCH_BASE_URL", sim.base_url)
    folder = tmp_path / "unpacked"
    folder.mkdir()
    monkeypatch.chdir(folder)
    doc = yaml.safe_load(write_manifest(folder, prompts_jobs(1), name="spring.yaml").read_text())
    del doc["output_dir"]
    (folder / "spring.yaml").write_text(yaml.safe_dump(doc))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / "output").symlink_to(elsewhere)
    assert main(["run", "spring.yaml", "--quiet"]) == 1
    assert capsys.readouterr().err == (
        f"octobatch: cannot write to the output folder {folder / 'output' / 'spring'}: "
        f"{refusal(folder / 'output')}; nothing was submitted\n")
    assert main(["report", "spring.yaml"]) == 1  # the gallery alone, without a run
    assert capsys.readouterr().err == (
        f"octobatch: cannot write the gallery {folder / 'output' / 'spring' / 'index.html'}: "
        f"{refusal(folder / 'output')}\n")
    assert list(elsewhere.iterdir()) == [] and sim.requests == []


# -- the review's take swap --------------------------------------------------------------------

@pytest.mark.parametrize("where", ["cat.take1.mp4", "cat.mp4"])
def test_choosing_a_take_never_moves_a_planted_symlink(tmp_path: Path, victim: Path,
                                                       where: str) -> None:
    # Choosing take 1 of `cat` swaps `cat.mp4` (take 2) and `cat.take1.mp4`.
    manifest = build_project(tmp_path / "shots")
    out = manifest.output_dir
    link = out / where
    kept = link.read_bytes()
    link.unlink()
    link.symlink_to(victim)
    with pytest.raises(StateError) as info:
        record_review(manifest.path, "cat", ReviewRequest(decision=None, take=1))
    assert str(info.value) == f"{link}: cannot move take 1 into place: {refusal(link)}"
    assert_untouched(victim) and link.is_symlink()
    other = ({"cat.mp4", "cat.take1.mp4"} - {where}).pop()
    assert (out / other).read_bytes() == clip("cat", 2 if other == "cat.mp4" else 1)
    assert load_state(manifest.path).jobs["cat"].selected.take == 2  # nothing recorded
    link.unlink()
    link.write_bytes(kept)
    record_review(manifest.path, "cat", ReviewRequest(decision=None, take=1))
    assert (out / "cat.mp4").read_bytes() == clip("cat", 1)


def test_choosing_a_take_never_follows_a_linked_output_folder(tmp_path: Path) -> None:
    # No git: the project is the manifest's folder. `out -> elsewhere` holding files named like
    # the takes: the swap would rename them there.
    manifest = build_project(tmp_path / "shots")
    elsewhere = tmp_path / "elsewhere"
    manifest.output_dir.rename(elsewhere)
    manifest.output_dir.symlink_to(elsewhere)
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    with pytest.raises(StateError) as info:
        record_review(manifest.path, "cat", ReviewRequest(decision=None, take=1))
    assert refusal(manifest.output_dir) in str(info.value)
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before


@pytest.mark.parametrize("given", [True, False])
def test_choosing_a_take_moves_no_file_a_hostile_lockfile_names_outside(
        tmp_path: Path, given: bool) -> None:
    # The lockfile is committed: a cloned one can say the takes live anywhere, with no link.
    manifest = build_project(tmp_path / "shots")
    home = tmp_path / "home"
    home.mkdir()
    mine = {"cat.mp4": b"my holiday", "cat.take1.mp4": b"my wedding"}
    for name, data in mine.items():
        (home / name).write_bytes(data)
    lock = manifest.lock_path
    lock.write_text(lock.read_text().replace('"out/cat', '"../home/cat'))
    with pytest.raises(ReviewError, match="outside the manifest's output folder"):
        record_review(manifest.path, "cat", ReviewRequest(decision=None, take=1),
                      output_dir=manifest.output_dir if given else None)
    assert {p.name: p.read_bytes() for p in home.iterdir()} == mine


async def test_the_review_server_never_serves_a_planted_symlink(tmp_path: Path,
                                                                victim: Path) -> None:
    manifest = build_project(tmp_path / "shots")
    link = manifest.output_dir / "cat.take1.mp4"
    link.unlink()
    link.symlink_to(victim)
    runner, url = await serve(ReviewConfig(manifest=manifest.path, token="t"), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            base = url.split("/?")[0]
            async with http.get(f"{base}/file?path=out%2Fcat.take1.mp4&token=t") as answer:
                assert answer.status == 404
                assert await answer.json() == {"error": "out/cat.take1.mp4 is a symbolic link; "
                                               "octobatch shows only the videos it wrote"}
            async with http.get(f"{base}/file?path=out%2Fcat.mp4&token=t") as answer:
                assert answer.status == 200 and await answer.read() == clip("cat", 2)
    finally:
        await runner.cleanup()


# -- octobatch schema --------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["octobatch-schema", "octobatch-schema/models",
                                   "octobatch-schema/manifest.schema.json",
                                   "octobatch-schema/models/sora-2.schema.json"])
def test_the_schema_command_never_writes_through_a_symlink(
        tmp_path: Path, victim: Path, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = project(tmp_path, prompts_jobs(1))
    link = manifest.parent / where
    link.parent.mkdir(parents=True, exist_ok=True)
    folder_link = not where.endswith(".json")
    link.symlink_to(victim.parent if folder_link else victim)
    assert main(["schema", str(manifest)]) == 1
    assert capsys.readouterr().err == (
        f"octobatch: {link}: cannot write the editor schema: {refusal(link)}\n")
    assert_untouched(victim)
    link.unlink()
    assert main(["schema", str(manifest)]) == 0
    assert (manifest.parent / "octobatch-schema" / "manifest.schema.json").is_file()
