"""Invalid manifests: the exact text users see, every problem of a file, never anything else."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from octobatch.errors import ManifestError
from octobatch.manifest import load_manifest
from octobatch.models import known_models

FIXTURES = Path(__file__).parent / "fixtures" / "manifests"
F = "tests/fixtures/manifests"


def errors_of(path: str | Path, **kwargs: object) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, **kwargs)  # type: ignore[arg-type]
    return [str(d) for d in info.value.diagnostics]


def write(tmp_path: Path, text: str | bytes, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # fixture paths as users type them


def test_common_mistakes_all_reported_with_exact_text() -> None:
    assert errors_of(f"{F}/common-mistakes.yaml") == [
        (f"{F}/common-mistakes.yaml:10:11: job 'cat': size: '1920x1080' is not one of "
        "'720x1280', '1280x720'"),
        (f"{F}/common-mistakes.yaml:13:5: job 'ratio-typo': aspect_ration: unknown field "
        "(did you mean 'aspect_ratio'?)"),
        (f"{F}/common-mistakes.yaml:15:12: job 'wrong-model': model: unknown model 'omni-fats'; "
        f"known models: {', '.join(known_models())} (did you mean 'omni-fast'?)"),
        (f"{F}/common-mistakes.yaml:17:9: job 'cat': id: duplicate id 'cat', also used at "
        f"{F}/common-mistakes.yaml:7:5 (ids must be unique; rename one of the jobs)"),
        (f"{F}/common-mistakes.yaml:19:5: job 'no-prompt': prompt: missing required field "
        "(set it on the job or in defaults)"),
        (f"{F}/common-mistakes.yaml:23:21: job 'last-only': last_image_url: needs "
        "first_image_url as well"),
        (f"{F}/common-mistakes.yaml:26:13: job 'too-many': images: has 6 entries; "
        "at most 5 allowed"),
        (f"{F}/common-mistakes.yaml:29:12: job 'video-on-fast': video: omni-fast takes no "
        "reference video; use model omni-fast-v2v to edit or extend a clip"),
    ]


def test_file_problems_all_reported_with_exact_text() -> None:
    assert errors_of(f"{F}/files.yaml") == [
        (f"{F}/files.yaml:7:22: job 'missing': input_reference: no such file 'assets/nope.png' "
        "(paths are relative to the manifest's directory)"),
        (f"{F}/files.yaml:10:22: job 'outside': input_reference: "
        "'../../../manifests/assets/cat.png' is outside the manifest's directory "
        "(pass --allow-outside-files to read files from anywhere)"),
        (f"{F}/files.yaml:13:22: job 'gif': input_reference: 'assets/not-really.png' is not a "
        "PNG, JPEG or WebP image (it looks like a GIF)"),
        (f"{F}/files.yaml:16:22: job 'url-upload': input_reference: must be a local image file: "
        "jimeng-video-3.0 uploads it (download it and give its path relative to the manifest)"),
        (f"{F}/files.yaml:20:12: job 'v2v-text': video: 'assets/notes.txt' is not an MP4 video "
        "(its content is not recognised)"),
        (f"{F}/files.yaml:21:5: job 'v2v-none': a reference video is required: set video (or its "
        "alias video_url or input_video) to an MP4 URL, data URI or local file"),
        (f"{F}/files.yaml:27:16: job 'image-as-video': video_url: 'assets/cat.png' is not an "
        "MP4 video (it is a PNG image)"),
        (f"{F}/files.yaml:28:5: job 'two-videos': video, video_url and input_video are aliases "
        "of one field: set only one"),
    ]


def test_bad_yaml_points_at_the_problem() -> None:
    assert errors_of(f"{F}/bad-yaml.yaml") == [
        (f"{F}/bad-yaml.yaml:6:1: invalid YAML: found unexpected end of stream: the quote at "
         "line 4, column 13 is never closed (end the value with the same quote character)")
    ]


def test_error_summary_counts_the_problems() -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(f"{F}/common-mistakes.yaml")
    assert str(info.value).endswith("\n8 errors found")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "m.yaml: the manifest is empty (start with 'version: 1' and 'jobs:')"),
        (b"# only a comment\n", ("m.yaml: the manifest is empty (start with 'version: 1' and "
         "'jobs:')")),
        (b"- a\n- b\n", ("m.yaml:1:1: the manifest must be a mapping with 'version' and 'jobs', "
         "not a list")),
        (b"just text\n", ("m.yaml:1:1: the manifest must be a mapping with 'version' and 'jobs', "
         "not a string")),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", ("m.yaml: not a UTF-8 text file (byte 1 is "
         "invalid) (a manifest is a YAML file saved as UTF-8)")),
        (b"a: 1\na: 2\n", "m.yaml:2:1: invalid YAML: duplicate key 'a'"),
        (b"a: &x [*x]\n", "m.yaml:1:4: invalid YAML: recursive alias: a value contains itself"),
        (b"a: 1\n---\nb: 2\n", ("m.yaml:2:1: invalid YAML: but found another document "
         "(expected a single document in the stream at line 1, column 1)")),
        (b"a: !python/object:os.system x\n", ("m.yaml:1:4: invalid YAML: could not determine a "
         "constructor for the tag '!python/object:os.system'")),
        (b"version: 1\nt: 2020-13-45\n", ("m.yaml:2:4: invalid YAML: cannot read '2020-13-45' "
         "as timestamp; quote it if it is text")),
        (b"t: !!int x\n", ("m.yaml:1:4: invalid YAML: cannot read 'x' as int; quote it if it "
         "is text")),
        (b"t: !!set x\n", "m.yaml:1:4: invalid YAML: a set cannot be written as a plain value"),
        (b"t: !!int ''\n", ("m.yaml:1:4: invalid YAML: cannot read '' as int; quote it if it "
         "is text")),
        (b"t: !!bool ''\n", ("m.yaml:1:4: invalid YAML: cannot read '' as bool; quote it if it "
         "is text")),
        (b"t: " + b"1" * 5000 + b"\n", ("m.yaml:1:4: invalid YAML: cannot read '" + "1" * 40
         + "' as int; quote it if it is text")),
    ],
)
def test_unreadable_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              content: bytes, expected: str) -> None:
    write(tmp_path, content)
    monkeypatch.chdir(tmp_path)
    assert errors_of("m.yaml") == [expected]


def test_missing_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert errors_of("nope.yaml") == ["nope.yaml: no such file"]
    (tmp_path / "dir.yaml").mkdir()
    assert errors_of("dir.yaml") == ["dir.yaml: is a directory; give the manifest's YAML file"]


def test_alias_bombs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    write(tmp_path, "\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    [message] = errors_of("m.yaml")
    assert "expands to more than 5,000,000 values through aliases" in message


def test_document_shape_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, """\
version: 2
foo: 1
settings: {concurrency: 0, poll_interval: x, bogus: 1}
output_dir: 5
defaults: {model: omni-fast, id: x, seconds: 99, aspect_ratoi: 1}
jobs:
  - 5
  - id: "bad id"
    prompt: x
  - matrix: {a: []}
    prompt: x
  - {id: ok, prompt: x, first_image_url: "https://example.com/a.png"}
""")
    monkeypatch.chdir(tmp_path)
    assert errors_of("m.yaml") == [
        ("m.yaml:1:10: version: must be 1 (the only manifest version this octobatch reads), "
        "got 2"),
        ("m.yaml:2:1: foo: unknown field (known fields: version, defaults, settings, output_dir, "
        "jobs)"),
        "m.yaml:3:25: settings.concurrency: must be at least 1, got 0",
        "m.yaml:3:43: settings.poll_interval: must be a number, not a string",
        ("m.yaml:3:46: settings.bogus: unknown field (known fields: concurrency, poll_interval, "
        "timeout, models_dir, prices, currency, max_cost)"),
        "m.yaml:4:13: output_dir: must be a string, not a number",
        "m.yaml:5:30: defaults.id: id and matrix belong on a job, not in defaults",
        ("m.yaml:5:46: defaults.seconds: must be a whole number of seconds from 4 to 30, got 99 "
        "(no job's model accepts this default)"),
        "m.yaml:5:50: defaults.aspect_ratoi: unknown field (did you mean 'aspect_ratio'?)",
        "m.yaml:7:5: job '#1': must be a mapping, not a number",
        ("m.yaml:8:9: job 'bad id': id: must start with a letter or digit and contain only "
        "letters, digits, '.', '_', '-' (and {variables} of the matrix), got 'bad id'"),
        "m.yaml:10:17: job '#3': matrix.a: must be a non-empty list of values, got an empty list",
    ]


def test_job_field_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, """\
version: 1
defaults: {model: omni-fast, seconds: 8, aspect_ratio: "16:9"}
jobs:
  - prompt: [1]
    seconds: true
  - id: walk
    matrix: {animal: [cat, dog]}
    prompt: "a {animal} and {colour}"
  - matrix: {animal: [cat], colr: [red]}
    prompt: "a {animal}"
  - prompt: x
    seconds: "3"
    images: []
  - prompt: y
    images: ["data:text/plain;base64,aGVsbG8="]
  - prompt: z
    first_image_url: ftp://example.com/a.png
  - model: jimeng-video-3.0
    prompt: jimeng
    seconds: 7
  - prompt: "{oops}"
  - id: "w-{n}"
    prompt: x
    matrix: {n: [[1, 2]]}
  - id: same
    prompt: q
    matrix: {aspect_ratio: ["16:9", "9:16"]}
  - prompt: dup
  - prompt: dup
  - {prompt: huge, seconds: "%s"}
""" % ("1" * 5000))
    monkeypatch.chdir(tmp_path)
    assert errors_of("m.yaml") == [
        "m.yaml:4:13: job '#1': prompt: must be a string, not a list",
        ("m.yaml:5:14: job '#1': seconds: must be a whole number of seconds from 4 to 30, "
        "got true"),
        ("m.yaml:6:9: job 'walk': id: the matrix gives several jobs the id 'walk' (use every "
        "matrix variable in the id or the prompt)"),
        ("m.yaml:8:13: job 'walk': prompt: unknown template variable {colour} (the matrix defines "
        "animal; write {{ and }} for literal braces)"),
        ("m.yaml:9:29: job '#3': matrix.colr: 'colr' is neither a field of omni-fast nor used as "
        "{colr} in id or prompt"),
        "m.yaml:12:14: job '#4': seconds: must be a whole number of seconds from 4 to 30, got 3",
        "m.yaml:13:13: job '#4': images: has 0 entries; at least 1 needed",
        ("m.yaml:15:14: job '#5': images[0]: a data URI here must look like "
        "data:image/...;base64,..."),
        ("m.yaml:17:22: job '#6': first_image_url: unsupported URL ftp://... (use a public "
        "http(s) URL, a data: URI or a path relative to the manifest)"),
        "m.yaml:20:14: job '#7': seconds: must be 5, 10 or 15, got 7",
        ("m.yaml:21:13: job '#8': prompt: unknown template variable {oops} (this job has no "
        "matrix; write {{ and }} for literal braces)"),
        "m.yaml:24:18: job 'w-{n}': id: {n} needs text or a number, not a list",
        ("m.yaml:25:9: job 'same': id: the matrix gives several jobs the id 'same' (use every "
        "matrix variable in the id or the prompt)"),
        ("m.yaml:29:5: job 'omni-fast-0c4600b6dc': id: same content as the job at m.yaml:28:5, "
        "so both get the id 'omni-fast-0c4600b6dc' (give each an id to generate it more than "
        "once)"),
        ("m.yaml:30:29: job '#13': seconds: must be a whole number of seconds from 4 to 30, got "
         "'" + "1" * 57 + "...'"),
    ]


def test_special_files_are_refused_without_reading_them(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would block forever
    path = write(tmp_path, "version: 1\njobs:\n  - {id: a, model: jimeng-video-3.0, prompt: x, "
                 "input_reference: pipe.png}\n")
    assert errors_of(path) == [
        f"{path}:3:66: job 'a': input_reference: 'pipe.png' is not a regular file"]


def test_wrong_format_image_and_large_video(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_bytes(b"%PDF-1.4 not an image")
    big = tmp_path / "big.mp4"
    with big.open("wb") as f:  # a sparse 16 MB file with a real ftyp box
        f.write(b"\x00\x00\x00\x18ftypisom")
        f.truncate(16 * 1024 * 1024)
    path = write(tmp_path, """\
version: 1
defaults: {model: omni-fast-v2v, prompt: x}
jobs:
  - {id: pdf, first_image_url: fake.jpg, video: https://example.com/a.mp4}
  - {id: big, video: big.mp4}
  - {id: empty-dir, video: .}
  - {id: big-inline, video: "data:video/mp4;base64,%s"}
""" % ("A" * (21 * 1024 * 1024)))
    assert errors_of(path) == [
        (f"{path}:4:32: job 'pdf': first_image_url: 'fake.jpg' is not a PNG, JPEG or WebP image "
        "(it looks like a PDF)"),
        (f"{path}:5:22: job 'big': video: 'big.mp4' is 16.0 MB; at most 15 MB allowed "
        "(trim or re-encode the clip)"),
        f"{path}:6:28: job 'empty-dir': video: '.' is a directory, not a file",
        (f"{path}:7:29: job 'big-inline': video: the data URI holds more than 15 MB (trim or "
         "re-encode the clip)"),
    ]


def test_inline_data_uris_are_checked_like_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 tiny_images: dict[str, bytes]) -> None:
    def uri(media_type: str, data: bytes) -> str:
        return f"data:{media_type};base64,{base64.b64encode(data).decode()}"

    clip = (FIXTURES / "assets" / "clip.mp4").read_bytes()
    write(tmp_path, f"""\
version: 1
defaults: {{model: omni-fast-v2v, prompt: x, video: "{uri('video/mp4', clip)}"}}
jobs:
  - {{id: ok, images: ["{uri('image/png', tiny_images['png'])}", "{uri('image/jpeg', tiny_images['jpeg'])}", "{uri('image/webp', tiny_images['webp'])}"]}}
  - {{id: garbled, first_image_url: "data:image/png;base64,!!!notbase64"}}
  - {{id: cut, first_image_url: "data:image/png;base64,iVBORw0KGgo"}}
  - {{id: mislabelled, first_image_url: "{uri('image/png', tiny_images['jpeg'])}"}}
  - {{id: not-an-image, images: ["{uri('image/webp', b'%PDF-1.4 x')}"]}}
  - {{id: gif, first_image_url: "{uri('image/gif', b'GIF89a')}"}}
  - {{id: empty, first_image_url: "data:image/png;base64,"}}
  - {{id: png-as-video, video: "{uri('video/mp4', tiny_images['png'])}"}}
  - {{id: webm, video: "data:video/webm;base64,GkXfow=="}}
""")
    monkeypatch.chdir(tmp_path)
    assert errors_of("m.yaml") == [
        ("m.yaml:5:36: job 'garbled': first_image_url: the data URI is not valid base64: '!' at "
         "character 1 of the data (encode the whole file, e.g. with `base64 -w0 FILE`)"),
        ("m.yaml:6:32: job 'cut': first_image_url: the data URI is not valid base64: the data is "
         "cut short (11 characters, not a multiple of 4) (encode the whole file, e.g. with "
         "`base64 -w0 FILE`)"),
        ("m.yaml:7:40: job 'mislabelled': first_image_url: the data URI says image/png but it "
         "is a JPEG image (fix the type after 'data:' or encode the right file)"),
        ("m.yaml:8:33: job 'not-an-image': images[0]: the data URI says image/webp but it looks "
         "like a PDF (fix the type after 'data:' or encode the right file)"),
        ("m.yaml:9:32: job 'gif': first_image_url: a data URI of type image/gif cannot be sent "
         "here (use image/png, image/jpeg or image/webp)"),
        ("m.yaml:10:34: job 'empty': first_image_url: the data URI holds no data (put the file's "
         "base64 text after the comma)"),
        ("m.yaml:11:31: job 'png-as-video': video: the data URI says video/mp4 but it is a PNG "
         "image (fix the type after 'data:' or encode the right file)"),
        ("m.yaml:12:23: job 'webm': video: a data URI of type video/webm cannot be sent here "
         "(use video/mp4)"),
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("version: 1\njobs:\n\t- id: a\n", (
            "m.yaml:3:1: invalid YAML: found character that cannot start any token: a tab in the "
            "indentation (YAML indents with spaces only: replace the tab)")),
        ("version: 1\njobs:\n  - id: a\n    prompt: x\n  \tmodel: omni-fast\n", (
            "m.yaml:5:3: invalid YAML: found a tab character that violates indentation: a tab in "
            "the indentation (YAML indents with spaces only: replace the tab)")),
        ("version: 1\njobs:\n  - id: a\n    prompt: x\n      model: omni-fast\n", (
            "m.yaml:5:12: invalid YAML: mapping values are not allowed in this context: this key "
            "is indented more than the line above it, so YAML reads it as part of that line's "
            "value (line it up with the key on line 4)")),
        ("version: 1\njobs:\n  - id: a\n    prompt: x\n  id: b\n    prompt: y\n", (
            "m.yaml:5:3: invalid YAML: did not find expected '-' indicator: a missing '- ': this "
            "line is at the indentation of the list at line 3, column 3 but does not start a new "
            "item (start each item of the list with '- ')")),
        ("version: 1\njobs:\n  - id: a\n    prompt: x\n  - id: b\n   prompt: y\n", (
            "m.yaml:6:4: invalid YAML: did not find expected '-' indicator: this line is indented "
            "differently from the lines above it (indent the keys of one mapping, and the items "
            "of one list, by the same number of spaces)")),
        ("version: 1\njobs:\n  - id: a\n    prompt: A cat: walks\n", (
            "m.yaml:4:18: invalid YAML: mapping values are not allowed in this context: ': ' "
            "inside an unquoted value (put the whole value in quotes)")),
        ("version: 1\njobs:\n  - id: a\n    prompt: x\n    model omni-fast\n", (
            "m.yaml:6:1: invalid YAML: could not find expected ':': line 5 is neither 'key: "
            "value' nor part of a value (write 'key: value' with a space after the colon; a "
            "value that continues on the next line must be indented more than its key)")),
        ("version: 1\njobs:\n  - {id: a, prompt: x\n", (
            "m.yaml:4:1: invalid YAML: did not find expected ',' or '}': the '{' at line 3, "
            "column 5 is never closed (end it with '}', or separate its entries with ',')")),
        ("version: 1\njobs:\n- id: a\n  prompt: @x\n", (
            "m.yaml:4:11: invalid YAML: found character that cannot start any token: '@' cannot "
            "start an unquoted value (put the value in quotes)")),
    ],
    ids=["tab", "tab-after-spaces", "over-indented-key", "missing-dash", "uneven-indent",
         "colon-in-value", "no-colon", "unclosed-brace", "reserved-character"],
)
def test_yaml_syntax_errors_say_what_they_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               content: str, expected: str) -> None:
    write(tmp_path, content)
    monkeypatch.chdir(tmp_path)
    assert errors_of("m.yaml") == [expected]


def test_one_mistake_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, """\
version: 1
defaults:
  model: omni-fast
  seconds: 8
  aspect-ratio: "16:9"
jobs:
  - {id: a, prompt: x}
  - {id: b, prompt: y, resolution: 720}
  - {id: c, prompt: z, video: https://example.com/a.mp4}
  - {id: d, prompt: w, aspect_ration: "9:16"}
""")
    monkeypatch.chdir(tmp_path)
    assert errors_of("m.yaml") == [
        "m.yaml:5:3: defaults.aspect-ratio: unknown field (did you mean 'aspect_ratio'?)",
        "m.yaml:8:36: job 'b': resolution: '720' is not one of '720p', '1080p', '2k', '4k'",
        ("m.yaml:9:31: job 'c': video: omni-fast takes no reference video; use model "
         "omni-fast-v2v to edit or extend a clip"),
        "m.yaml:10:24: job 'd': aspect_ration: unknown field (did you mean 'aspect_ratio'?)",
    ]


def test_hints_name_only_what_the_model_allows(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, """\
version: 1
defaults: {seconds: 5, aspect_ratio: "16:9"}
jobs:
  - {id: omni, model: omni-fast, prompt: x, size: 1280x720}
  - {id: jimeng, model: jimeng-video-3.0, prompt: x, aspect_ratio: "16:9"}
  - {id: typo, model: jimeng-video-3.0, prompt: x, sise: 1280x720}
""")
    monkeypatch.chdir(tmp_path)
    assert errors_of("m.yaml") == [
        ("m.yaml:4:45: job 'omni': size: unknown field (known fields: model, prompt, seconds, "
         "aspect_ratio, resolution, first_image_url, last_image_url, images)"),
        ("m.yaml:5:68: job 'jimeng': aspect_ratio: jimeng sets the shape with size: 720x1280 "
         "(portrait) or 1280x720 (landscape)"),
        "m.yaml:6:52: job 'typo': sise: unknown field (did you mean 'size'?)",
    ]
