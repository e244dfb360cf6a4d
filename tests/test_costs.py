"""Prices in the manifest -> what `plan` says a run costs, per job, per model and in total."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from octobatch.cli import main
from octobatch.costs import Price, amount

JOBS = [
    {"id": "intro-a", "prompt": "Ocean waves"},
    {"id": "intro-b", "prompt": "A cat", "seconds": 4},
    {"id": "restyle", "model": "omni-fast-v2v", "prompt": "restyle it",
     "video": "https://example.com/a.mp4"},
    {"id": "cn", "model": "jimeng-video-3.0", "prompt": "猫", "size": "1280x720"},
]


def write(tmp_path: Path, settings: dict[str, Any] | None, jobs: list[dict[str, Any]] = JOBS) -> Path:
    doc: dict[str, Any] = {"version": 1, "defaults": {"model": "omni-fast", "seconds": 8,
                                                      "aspect_ratio": "16:9"},
                           "output_dir": "out", "jobs": jobs}
    if settings is not None:
        doc["settings"] = settings
    path = tmp_path / "priced.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


PRICES = {"currency": "USD", "prices": {
    "omni-fast": {"per_second": 0.05},
    "jimeng-video-3.0": {"per_job": 0.4, "per_second": 0.01},  # both add up
}}


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["plan", *argv])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


def test_plan_shows_cost_per_job_per_model_and_in_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, PRICES)
    monkeypatch.chdir(tmp_path)
    code, out = plan(capsys, "priced.yaml")
    assert code == 0
    assert out == """\
plan for priced.yaml (lockfile priced.lock.json, output out)

submit (4)
  intro-a  omni-fast           8s  0.40 USD  new job
  intro-b  omni-fast           4s  0.20 USD  new job
  restyle  omni-fast-v2v       8s  unpriced  new job
  cn       jimeng-video-3.0    5s  0.45 USD  new job

jobs: 4 (submit 4)
video to generate: jimeng-video-3.0 5s, omni-fast 12s, omni-fast-v2v 8s
jobs that will cost money: 4
cost by model: jimeng-video-3.0 1 job 0.45 USD, omni-fast 2 jobs 0.60 USD, omni-fast-v2v 1 job unpriced
total cost: 1.05 USD + 1 unpriced job (give its model a price in settings.prices); already spent: 0.00 USD
"""


def test_plan_json_has_the_cost_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, PRICES)
    code, out = plan(capsys, str(path), "--json")
    document = json.loads(out)
    assert document["cost"] == {"total": 1.05, "currency": "USD", "unpriced_jobs": 1,
                                "spent": 0.0}
    assert {s["id"]: s["cost"] for s in document["steps"]} == {
        "intro-a": 0.4, "intro-b": 0.2, "restyle": None, "cn": 0.45}


def test_without_prices_every_job_is_unpriced_never_free(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, None)
    code, out = plan(capsys, str(path))
    assert out.endswith(
        "jobs that will cost money: 4\n"
        "total cost: unpriced (4 jobs; add settings.prices, see docs/manifest.md); "
        "already spent: 0.00\n")
    assert "  intro-a  omni-fast           8s  new job\n" in out  # no cost column without prices
    code, out = plan(capsys, str(path), "--json")
    document = json.loads(out)
    assert document["cost"] == {"total": 0.0, "currency": "", "unpriced_jobs": 4, "spent": 0.0}
    assert {s["cost"] for s in document["steps"]} == {None}


def test_a_currency_is_only_a_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, {"currency": "credits", "prices": {"omni-fast": {"per_job": 1500}}},
                 JOBS[:2])
    code, out = plan(capsys, str(path))
    assert "total cost: 3,000.00 credits; already spent: 0.00 credits\n" in out


def test_a_bad_price_is_a_manifest_error_with_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"prices": {"omni-fast": {"per_minute": 3}}})
    assert main(["plan", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"{path}:24:7: settings.prices.omni-fast.per_minute: unknown field "
        "(known fields: per_second, per_job)\n1 error found\n")
    path = write(tmp_path, {"prices": {"omni-fast": {"per_second": -1}, "jimeng-video-3.0": {}}})
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "settings.prices.omni-fast.per_second: must be at least 0, got -1\n" in err, err
    assert ("settings.prices.jimeng-video-3.0: a price is {per_second: N} and/or {per_job: N}, "
            "each a number of 0 or more") in err, err
    path = write(tmp_path, {"prices": {"omni-fast": {"per_second": 1e308}}})  # 8 s: inf
    assert main(["plan", str(path), "--json"]) == 2
    assert "settings.prices.omni-fast.per_second: must be at most 1000000000000, got 1e+308" \
        in capsys.readouterr().err


def test_prices_add_up_and_small_amounts_keep_their_digits() -> None:
    assert Price(per_second=0.05, per_job=0.4).of(8) == pytest.approx(0.8)
    assert Price(per_second=0.05).of(None) is None  # length unknown: unpriced, not zero
    assert amount(0.0125, "USD") == "0.0125 USD"
    assert amount(2.5, "") == "2.50"


def test_a_price_for_an_unknown_model_is_a_typo(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, {"prices": {"omni_fast": {"per_second": 0.05}}}, JOBS[:1])
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:12:5: settings.prices.omni_fast: unknown model 'omni_fast'; "
                          "known models: ")
    assert err.endswith(" (did you mean 'omni-fast'?)\n1 error found\n")


def test_plan_and_show_report_what_the_lockfile_records_as_spent(
    simulator_thread: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from octobatch.simulator import DEMO_KEY

    server = simulator_thread()
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OCTOBATCH_BASE_URL", server.base_url)
    path = write(tmp_path, PRICES)
    assert main(["run", str(path), "--only", "intro-*", "--quiet", "--poll-interval", "0.02"]) == 0
    capsys.readouterr()
    code, out = plan(capsys, str(path), "--json")
    assert json.loads(out)["cost"] == {"total": 0.45, "currency": "USD", "unpriced_jobs": 1,
                                       "spent": 0.6}
    code, out = plan(capsys, str(path))
    assert out.endswith("; already spent: 0.60 USD\n")
    assert main(["show", str(path), "intro-b", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["cost"], shown["spent"]) == (0.2, 0.2)
