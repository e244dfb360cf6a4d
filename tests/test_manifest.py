"""Loading valid manifests: defaults, matrix, templates, ids, hashing, files, settings, paths."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from octobatch.errors import ManifestError
from octobatch.manifest import Settings, load_manifest, load_manifests

FIXTURES = Path(__file__).parent / "fixtures" / "manifests"
REPO = Path(__file__).resolve().parent.parent
CAT_PNG = FIXTURES / "assets" / "cat.png"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jobs_by_id(path: Path, **kwargs: object) -> dict:
    return {job.id: job for job in load_manifest(path, **kwargs).jobs}  # type: ignore[arg-type]


@pytest.mark.parametrize("path", sorted((REPO / "manifests").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_example_manifests_are_valid(path: Path) -> None:
    assert load_manifest(path).jobs


def test_example_manifests_include_demo_and_example() -> None:
    assert {"demo.yaml", "example.yaml"} <= {p.name for p in (REPO / "manifests").iterdir()}


def test_every_image_format_is_recognised_by_content(tmp_path: Path,
                                                     tiny_images: dict[str, bytes]) -> None:
    for fmt, data in tiny_images.items():
        (tmp_path / f"picture-{fmt}.bin").write_bytes(data)  # the name says nothing
    path = write(tmp_path, """version: 1
defaults: {model: omni-fast, prompt: x}
jobs:
  - {id: a, images: [picture-png.bin, picture-jpeg.bin, picture-webp.bin]}
""")
    [job] = load_manifest(path).jobs
    assert [f.media_type for f in job.files] == ["image/png", "image/jpeg", "image/webp"]


def test_demo_uses_every_model_and_mode() -> None:
    jobs = load_manifest(REPO / "manifests" / "demo.yaml").jobs
    assert {job.model for job in jobs} == {
        "omni-fast", "omni-fast-v2v", "jimeng-video-3.0", "jimeng-video-2.0",
        "doubao-seedance-1-5-pro_720p", "sora-2",
    }
    fields = {name for job in jobs for name in job.fields}
    assert {"first_image_url", "last_image_url", "images", "video", "input_reference",
            "first_frame_image", "last_frame_image", "metadata"} <= fields
    assert {f.media_type for job in jobs for f in job.files} == {"image/png", "video/mp4"}
    assert sum(1 for job in jobs if job.id.startswith("walk-")) == 4  # the matrix
    assets = REPO / "manifests" / "assets"
    assert sum(p.stat().st_size for p in assets.iterdir()) < 20_000


def test_every_rule_fixture_expands_as_documented() -> None:
    manifest = load_manifest(FIXTURES / "every-rule.yaml")
    jobs = {job.id: job for job in manifest.jobs}
    assert list(jobs)[:5] == ["text", "first-frame", "data-uri", "local-images", "jimeng-image"]
    # defaults merged under jobs; numeric strings and numbers both become strings
    assert jobs["text"].fields == {
        "seconds": "10", "aspect_ratio": "16:9", "resolution": "1080p",
        "prompt": "Plain text-to-video",
    }
    assert jobs["first-frame"].fields["seconds"] == "6"
    # a jimeng job takes the defaults its model has fields for, and the model's own defaults
    assert jobs["jimeng-image"].fields == {
        "seconds": "10", "prompt": "猫咪在草地上追逐蝴蝶", "input_reference": "assets/cat.png",
        "size": "720x1280",
    }
    # matrix: API fields set per job, other keys only fill templates; {{ }} are literal braces
    assert jobs["shot-2-9-16"].fields["aspect_ratio"] == "9:16"
    assert jobs["shot-2-9-16"].fields["seconds"] == "4"
    assert jobs["shot-2-9-16"].fields["prompt"] == "Take 2 in {braces}"
    assert "n" not in jobs["shot-2-9-16"].fields
    assert manifest.settings == Settings(concurrency=3, poll_interval=2.5, timeout=600.0)
    assert manifest.output_dir == FIXTURES / "out" / "every-rule"
    assert manifest.lock_path == FIXTURES / "every-rule.lock.json"


def test_local_files_are_hashed_into_the_canonical_spec() -> None:
    jobs = jobs_by_id(FIXTURES / "every-rule.yaml")
    digest = hashlib.sha256(CAT_PNG.read_bytes()).hexdigest()
    job = jobs["local-images"]
    assert job.canonical["images"] == [f"sha256:{digest}", f"sha256:{digest}"]
    assert [f.field for f in job.files] == ["images[0]", "images[1]"]
    assert job.files[0].path == CAT_PNG.resolve() and job.files[0].media_type == "image/png"
    # the spec hash is the sha256 of the canonical JSON
    text = json.dumps(job.canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert job.spec_hash == hashlib.sha256(text.encode()).hexdigest()
    assert job.canonical["model"] == "omni-fast"
    v2v = jobs["v2v-local"]
    assert v2v.files[0].media_type == "video/mp4" and v2v.canonical["input_video"].startswith(
        "sha256:")


def test_changing_a_referenced_file_changes_the_hash(tmp_path: Path) -> None:
    (tmp_path / "ref.png").write_bytes(CAT_PNG.read_bytes())
    path = write(tmp_path, "version: 1\njobs:\n  - id: a\n    model: jimeng-video-3.0\n"
                 "    prompt: x\n    input_reference: ref.png\n")
    before = load_manifest(path).jobs[0].spec_hash
    (tmp_path / "ref.png").write_bytes(CAT_PNG.read_bytes() + b"\0")
    assert load_manifest(path).jobs[0].spec_hash != before


def test_settings_and_output_paths_never_change_the_hash(tmp_path: Path) -> None:
    a = write(tmp_path, "version: 1\njobs:\n  - {id: a, model: omni-fast, prompt: x, seconds: 5,"
              " aspect_ratio: '16:9'}\n", "a.yaml")
    b = write(tmp_path, "version: 1\nsettings: {concurrency: 1, poll_interval: 9}\n"
              "output_dir: elsewhere\njobs:\n  - {id: a, model: omni-fast, prompt: x,"
              " seconds: '5', aspect_ratio: '16:9'}\n", "b.yaml")
    assert load_manifest(a).jobs[0].spec_hash == load_manifest(b).jobs[0].spec_hash


def test_derived_ids_come_from_content_not_position(tmp_path: Path) -> None:
    one = write(tmp_path, "version: 1\ndefaults: {model: jimeng-video-2.0}\njobs:\n"
                "  - prompt: first\n  - prompt: second\n", "one.yaml")
    two = write(tmp_path, "version: 1\ndefaults: {model: jimeng-video-2.0}\njobs:\n"
                "  - prompt: second\n  - prompt: first\n  - prompt: third\n", "two.yaml")
    ids_one = [job.id for job in load_manifest(one).jobs]
    ids_two = [job.id for job in load_manifest(two).jobs]
    assert ids_two[:2] == ids_one[::-1]
    assert all(i.startswith("jimeng-video-2.0-") and len(i) == len("jimeng-video-2.0-") + 10
               for i in ids_one)


def test_output_dir_defaults_to_cwd_output_and_can_be_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "version: 1\njobs: []\n", "spring.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_manifest("spring.yaml").output_dir == tmp_path / "output" / "spring"
    assert load_manifest(path, output_dir="x/y").output_dir == tmp_path / "x" / "y"
    assert load_manifest("spring.yaml").path == Path("spring.yaml")  # as given, for messages


def test_outside_files_need_permission(tmp_path: Path) -> None:
    (tmp_path / "ref.png").write_bytes(CAT_PNG.read_bytes())
    sub = tmp_path / "sub"
    sub.mkdir()
    path = write(sub, "version: 1\njobs:\n  - id: a\n    model: jimeng-video-3.0\n"
                 "    prompt: x\n    input_reference: ../ref.png\n")
    with pytest.raises(ManifestError, match="--allow-outside-files"):
        load_manifest(path)
    job = load_manifest(path, allow_outside_files=True).jobs[0]
    assert job.files[0].path == (tmp_path / "ref.png").resolve()


def test_a_symlink_cannot_smuggle_a_file_out_of_the_tree(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(CAT_PNG.read_bytes())
    sub = tmp_path / "sub"
    sub.mkdir()
    os.symlink(secret, sub / "innocent.png")
    path = write(sub, "version: 1\njobs:\n  - id: a\n    model: jimeng-video-3.0\n"
                 "    prompt: x\n    input_reference: innocent.png\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert "'innocent.png' is outside the manifest's directory" in str(info.value)


def test_yaml_features_anchors_merge_keys_and_base60(tmp_path: Path) -> None:
    path = write(tmp_path, """\
version: 1
x-shared: &shared {model: omni-fast, seconds: 5, aspect_ratio: 9:16}
jobs:
  - <<: *shared
    id: a
    prompt: x
""")
    with pytest.raises(ManifestError, match=r"x-shared: unknown field"):
        load_manifest(path)
    path.write_text(path.read_text().replace("x-shared: &shared", "defaults: &shared"))
    job = load_manifest(path).jobs[0]
    assert job.fields["aspect_ratio"] == "9:16"


def test_load_manifests_reports_every_file(tmp_path: Path) -> None:
    good = write(tmp_path, "version: 1\njobs: []\n", "good.yaml")
    bad1 = write(tmp_path, "version: 2\njobs: []\n", "bad1.yaml")
    bad2 = write(tmp_path, "jobs: []\n", "bad2.yaml")
    with pytest.raises(ManifestError) as info:
        load_manifests([good, bad1, bad2])
    assert [d.file for d in info.value.diagnostics] == [str(bad1), str(bad2)]
    assert len(load_manifests([good, good])) == 2


def test_matrix_over_models(tmp_path: Path) -> None:
    path = write(tmp_path, """\
version: 1
jobs:
  - id: "m-{model}"
    prompt: x
    matrix:
      model: [jimeng-video-3.0, jimeng-video-2.0]
""")
    jobs = jobs_by_id(path)
    assert {job.model for job in jobs.values()} == {"jimeng-video-3.0", "jimeng-video-2.0"}
    assert set(jobs) == {"m-jimeng-video-3.0", "m-jimeng-video-2.0"}


def test_takes_on_a_job_or_in_defaults_is_not_part_of_the_spec(tmp_path: Path) -> None:
    path = write(tmp_path, """\
version: 1
defaults: {model: omni-fast, seconds: 8, aspect_ratio: "16:9", takes: 2}
jobs:
  - {id: a, prompt: x}
  - {id: b, prompt: y, takes: 5}
  - {id: "c-{n}", prompt: "z {n}", matrix: {n: [1, 2]}, takes: 1}
""")
    jobs = jobs_by_id(path)
    assert {job_id: job.takes for job_id, job in jobs.items()} == {
        "a": 2, "b": 5, "c-1": 1, "c-2": 1}
    assert "takes" not in jobs["b"].fields and "takes" not in jobs["b"].canonical
    path.write_text(path.read_text().replace("takes: 5", "takes: 1"))
    assert jobs_by_id(path)["b"].spec_hash == jobs["b"].spec_hash


def test_takes_must_be_a_small_whole_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    write(tmp_path, """\
version: 1
defaults: {model: omni-fast, seconds: 8, aspect_ratio: "16:9", takes: 0}
jobs:
  - {id: a, prompt: x, takes: "3"}
  - {id: b, prompt: y, takes: 101}
""")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError) as info:
        load_manifest("m.yaml")
    assert [str(d) for d in info.value.diagnostics] == [
        "m.yaml:2:71: defaults.takes: must be a whole number of takes from 1 to 100, got 0",
        "m.yaml:4:31: job 'a': takes: must be a whole number of takes from 1 to 100, got '3'",
        "m.yaml:5:31: job 'b': takes: must be a whole number of takes from 1 to 100, got 101",
    ]
