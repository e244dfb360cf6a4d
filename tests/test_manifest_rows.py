"""`rows: FILE`: a job per row of a CSV, TSV or JSONL file, checked like the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from octobatch.errors import ManifestError
from octobatch.manifest import load_manifest

HEAD = "version: 1\ndefaults: {model: omni-fast, seconds: 8, aspect_ratio: '16:9'}\njobs:\n"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def errors_of(path: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return [str(d) for d in info.value.diagnostics]


def test_each_row_is_a_job_and_rows_combine_with_a_matrix(here: Path) -> None:
    (here / "shots.csv").write_text("id,prompt,seconds,notes\n"
                                    "beach-{resolution},Waves at dusk,10,keep\n"
                                    "snow-{resolution},\"Snow, falling\",,\n")
    (here / "j.tsv").write_text("prompt\tsize\nA jimeng shot\t1280x720\n")
    (here / "more.jsonl").write_text('{"n": 1, "prompt": "one", "aspect_ratio": "9:16"}\n\n'
                                     '{"n": 2, "prompt": "two {n}"}\n')
    (here / "m.yaml").write_text(HEAD + "  - rows: shots.csv\n"
                                 "    matrix: {resolution: [720p, 1080p]}\n"
                                 "  - {rows: j.tsv, model: jimeng-video-3.0}\n"
                                 "  - {rows: more.jsonl, id: 'more-{n}', takes: 2}\n")
    jobs = {job.id: job for job in load_manifest("m.yaml").jobs}
    assert list(jobs)[:4] == ["beach-720p", "beach-1080p", "snow-720p", "snow-1080p"]
    assert jobs["beach-1080p"].fields == {"seconds": "10", "aspect_ratio": "16:9",
                                          "prompt": "Waves at dusk", "resolution": "1080p"}
    assert jobs["snow-720p"].fields["prompt"] == "Snow, falling"
    assert jobs["snow-720p"].fields["seconds"] == "8"  # an empty cell leaves the default
    assert str(jobs["snow-720p"].source) == "shots.csv:3:1"
    [jimeng] = [job for job in jobs.values() if job.model == "jimeng-video-3.0"]
    assert jimeng.id.startswith("jimeng-video-3.0-") and jimeng.fields["size"] == "1280x720"
    assert jobs["more-1"].fields["aspect_ratio"] == "9:16" and jobs["more-2"].takes == 2
    assert jobs["more-2"].fields["prompt"] == "two 2" and "n" not in jobs["more-2"].fields


def test_problems_name_the_row_and_the_column(here: Path) -> None:
    (here / "shots.csv").write_text("id,prompt,seconds,sconds\n"
                                    "a,fine,8,\n"
                                    "b,too long,99,\n"
                                    "a,again,8,\n"
                                    "c,typo,,5\n"
                                    "d,x,8,,extra\n")
    (here / "m.yaml").write_text(HEAD + "  - rows: shots.csv\n  - rows: gone.csv\n"
                                 "  - rows: m.yaml\n  - {rows: ok.jsonl, seconds: 5}\n")
    (here / "ok.jsonl").write_text('{"prompt": "x", "seconds": 6}\n')
    assert errors_of("m.yaml") == [
        ("m.yaml:5:11: job '#2': rows: no such file 'gone.csv' (paths are relative to the "
         "manifest's directory)"),
        ("m.yaml:6:11: job '#3': rows: 'm.yaml' is not a .csv, .tsv or .jsonl file (give a CSV "
         "or TSV file with a header row, or a JSONL file)"),
        ("ok.jsonl:1:17: job '#4': seconds: column 'seconds' is also set on the job (keep one "
         "of them)"),
        ("shots.csv:6:1: job '#1': rows: this row has 5 cells; the header names 4 columns "
         "(quote a cell that contains the separator)"),
    ]
    (here / "shots.csv").write_text("\n".join((here / "shots.csv").read_text().splitlines()[:5])
                                    + "\n")
    (here / "m.yaml").write_text(HEAD + "  - rows: shots.csv\n")
    assert errors_of("m.yaml") == [
        ("shots.csv:1:19: job 'c': sconds: 'sconds' is neither a field of omni-fast nor used "
         "as {sconds} in id or prompt (did you mean 'seconds'?)"),
        ("shots.csv:3:12: job 'b': seconds: must be a whole number of seconds from 4 to 30, "
         "got 99"),
        ("shots.csv:4:1: job 'a': id: duplicate id 'a', also used at shots.csv:2:1 (ids must "
         "be unique; rename one of the jobs)"),
    ]
