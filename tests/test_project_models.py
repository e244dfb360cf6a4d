"""Models a project adds (settings.models_dir, OCTOBATCH_MODELS_PATH), and every shipped model
run end to end through the engine against the simulator."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine_helpers import run_engine
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import octobatch
from octobatch.cli import main
from octobatch.errors import ManifestError
from octobatch.manifest import load_manifest
from octobatch.models import MODELS_PATH_ENV, build_request, known_models, load_models
from octobatch.reference import render_reference
from octobatch.simulator import Simulator

FIXTURES = Path(__file__).parent / "fixtures"
TOY = FIXTURES / "models" / "toy-video-1.schema.json"
PNG = FIXTURES / "manifests" / "assets" / "cat.png"


def project(tmp_path: Path, *jobs: dict[str, Any], models_dir: str | None = "models") -> Path:
    (tmp_path / "models").mkdir(exist_ok=True)
    shutil.copy(TOY, tmp_path / "models" / TOY.name)
    shutil.copy(PNG, tmp_path / "cat.png")
    document: dict[str, Any] = {"version": 1}
    if models_dir is not None:
        document["settings"] = {"models_dir": models_dir}
    document.update(output_dir="out", jobs=list(jobs))
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def toy(**fields: Any) -> dict[str, Any]:
    return {"id": "t", "model": "toy-video-1", "prompt": "hello", **fields}


def errors(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return [str(d).removeprefix(f"{path}:") for d in info.value.diagnostics]


def test_a_project_model_validates_like_a_shipped_one(tmp_path: Path) -> None:
    path = project(tmp_path, toy(seconds=8, style={"tone": "warm"}, first_image_url="cat.png"))
    [job] = load_manifest(path).jobs
    assert job.model == "toy-video-1" and job.fields["seconds"] == "8"
    assert build_request(job).json == {
        "model": "toy-video-1", "prompt": "hello", "seconds": "8", "style": {"tone": "warm"},
        "first_image_url": "data:image/png;base64," + base64.b64encode(PNG.read_bytes()).decode()}
    assert "toy-video-1" not in known_models()  # nothing leaks into the shipped list
    path = project(tmp_path, toy(seconds=5, style={"tone": "hot"}))
    assert errors(path) == [
        "9:12: job 't': seconds: must be 4 or 8, got 5",
        "11:11: job 't': style.tone: 'hot' is not one of 'warm', 'cold'"]


def test_the_environment_names_model_folders_too(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = project(tmp_path, toy(), models_dir=None)
    assert errors(path)[0].startswith("5:10: job 't': model: unknown model 'toy-video-1'")
    monkeypatch.setenv(MODELS_PATH_ENV, str(tmp_path / "models"))
    assert load_manifest(path).jobs[0].model == "toy-video-1"
    monkeypatch.setenv(MODELS_PATH_ENV, str(tmp_path / "nowhere"))
    assert errors(path) == [f" {MODELS_PATH_ENV}: {tmp_path / 'nowhere'}: no such models folder"]


@pytest.mark.parametrize(("content", "message"), [
    ('{"x": ', "cannot read schema: Expecting value: line 1 column 7 (char 6)"),
    ('{"properties": {"model": {}, "prompt": {}}}',
     "x-octobatch: missing; every model schema declares its transport"),
    ('{"x-octobatch": {"transport": "json", "sorce": "x"}, "properties": {"model": {}}}',
     "x-octobatch: unknown key 'sorce'; known keys: file_fields, image_fields, max_video_bytes, "
     "numeric_fields, provider, seconds_field, source, transport, unsaid, video_fields"),
    ('{"x-octobatch": {"transport": "json"}, "properties": {"model": {}, '
     '"prompt": {"$ref": "https://example.com/evil.json"}}}',
     "$ref 'https://example.com/evil.json' does not resolve; inside a model only local "
     "references (#/$defs/...) are allowed, and a family file is named by the top-level $ref"),
    ('{"$ref": "../../outside.schema.json", "properties": {"model": {}}}',
     "$ref '../../outside.schema.json' must name a family file inside"),
    ('{"x-octobatch": {"transport": "json"}, "properties": {"model": {"const": "other"}}}',
     "properties.model.const is 'other'; it must be the file's name 'broken'"),
])
def test_a_malformed_project_model_is_named_with_a_clear_error(
        tmp_path: Path, content: str, message: str) -> None:
    path = project(tmp_path, toy())
    (tmp_path / "models" / "broken.schema.json").write_text(content)
    [error] = errors(path)
    prefix = f"3:15: settings.models_dir: {tmp_path / 'models' / 'broken.schema.json'}: "
    assert error.startswith(prefix) and message in error.removeprefix(prefix), error


def test_a_project_cannot_redefine_a_shipped_model(tmp_path: Path) -> None:
    path = project(tmp_path, toy())
    (tmp_path / "models" / "sora-2.schema.json").write_text(
        (octobatch.models.default_schema_dir() / "models" / "sora-2.schema.json").read_text())
    assert errors(path) == [
        f"3:15: settings.models_dir: {tmp_path / 'models' / 'sora-2.schema.json'}: model "
        "'sora-2' ships with octobatch already; rename the project's model file or remove it"]


def test_the_schema_command_writes_an_editor_schema_that_knows_the_project(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project(tmp_path, toy())
    assert main(["schema", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"({len(known_models()) + 1} models, 1 from the project)" in out
    assert "# yaml-language-server: $schema=octobatch-schema/manifest.schema.json" in out
    folder = tmp_path / "octobatch-schema"
    resources = [(p.relative_to(folder).as_posix(), Resource.from_contents(json.loads(
        p.read_text()))) for p in (folder / "models").glob("*.schema.json")]
    assert {p.name for p in (folder / "models").iterdir()} == {
        f"{m}.schema.json" for m in [*known_models(), "toy-video-1"]}
    validator = Draft202012Validator(json.loads((folder / "manifest.schema.json").read_text()),
                                     registry=Registry().with_resources(resources))
    good = yaml.safe_load(path.read_text())
    assert list(validator.iter_errors(good)) == []
    good["jobs"][0]["style"] = {"tone": "hot"}
    assert [tuple(e.absolute_path) for e in validator.iter_errors(good)] == [
        ("jobs", 0, "style", "tone")]


def test_the_reference_documents_a_project_model(tmp_path: Path) -> None:
    project(tmp_path, toy())
    text = render_reference(extra_dirs=[tmp_path / "models"])
    assert "### toy-video-1\n" in text and "Source: <https://example.com/toy-video-1>" in text
    assert "### toy-video-1\n" not in render_reference()


def test_a_project_model_runs_end_to_end(tmp_path: Path, simulator_thread: Any) -> None:
    path = project(tmp_path, toy(seconds=8, first_image_url="cat.png"))
    sim: Simulator = simulator_thread(extra_models={"toy-video-1": "json"})
    result = octobatch.run(path, base_url=sim.base_url, api_key="sk-demo-octobatch",
                           poll_interval=0.01)
    assert (result.completed, result.failed) == (1, 0)
    [task] = sim.tasks.values()
    assert task.model == "toy-video-1" and task.params["seconds"] == "8"
    assert task.params["first_image_url"].startswith("data:image/png;base64,")
    assert (tmp_path / "out" / "t.mp4").stat().st_size > 0


def test_run_simulate_serves_the_projects_models(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCTOBATCH_SIMULATE_LATENCY", "0.02")
    path = project(tmp_path, toy())
    result = octobatch.run(path, simulate=True, poll_interval=0.01)
    assert (result.completed, result.failed) == (1, 0)


async def test_every_shipped_model_runs_through_the_simulator(tmp_path: Path,
                                                              simulator: Simulator) -> None:
    shutil.copy(PNG, tmp_path / "cat.png")
    jobs = [{"id": f"m{i}", "model": name, "prompt": f"a clip from {name}"}
            for i, name in enumerate(known_models())]
    for entry in jobs:  # the modes that need more than a prompt
        if entry["model"] == "omni-fast-v2v":
            entry["video"] = "https://example.com/clip.mp4"
        elif entry["model"] == "omni-fast":
            entry.update(seconds=8, aspect_ratio="16:9")
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "output_dir": "out", "jobs": jobs}))
    outcome = await run_engine(simulator, path, concurrency=8)
    assert (outcome.result.completed, outcome.result.failed) == (len(jobs), 0), [
        e for e in outcome.events if e.name == "failed"]
    assert sorted(t.model for t in simulator.tasks.values()) == sorted(load_models())
