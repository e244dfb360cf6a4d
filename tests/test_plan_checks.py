"""`plan --exit-code` for CI and `plan --check-key` against the provider's usage endpoint."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import prompts_jobs, write_manifest

from octobatch.cli import main
from octobatch.simulator import DEMO_KEY, KeyUsage


def test_exit_code_says_whether_a_run_would_submit(
    simulator_thread: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_manifest(tmp_path, prompts_jobs(2))
    assert main(["plan", str(path)]) == 0  # without the flag: 0 whatever the plan says
    assert main(["plan", str(path), "--exit-code"]) == 3
    assert main(["plan", str(path), "--detailed-exitcode", "--only", "clip-0"]) == 3
    server = simulator_thread()
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OCTOBATCH_BASE_URL", server.base_url)
    assert main(["run", str(path), "--quiet", "--poll-interval", "0.02"]) == 0
    assert main(["plan", str(path), "--exit-code"]) == 0
    (tmp_path / "bad.yaml").write_text("version: 1\njobs: [{prompt: x, model: nope}]\n")
    assert main(["plan", str(tmp_path / "bad.yaml"), "--exit-code"]) == 2
    capsys.readouterr()


def _plan_check(path: Path, base_url: str, capsys: pytest.CaptureFixture[str],
                *extra: str) -> tuple[int, str, str]:
    code = main(["plan", str(path), "--check-key", "--base-url", base_url, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_key_shows_the_quota_and_expiry(
    simulator_thread: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    server = simulator_thread(usage=KeyUsage(granted=500_000, used=1_200,
                                             expires_at=1_893_456_000))
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    path = write_manifest(tmp_path, prompts_jobs(1))
    code, out, err = _plan_check(path, server.base_url, capsys)
    assert code == 0 and err == ""
    assert out.endswith("key: 498,800 quota left, expires 2030-01-01 00:00 UTC\n")
    code, out, err = _plan_check(path, server.base_url, capsys, "--json")
    assert json.loads(out)["key"] == {"ok": True, "available": 498800.0, "unlimited": False,
                                      "expires_at": 1_893_456_000}
    assert DEMO_KEY not in out


def test_check_key_says_plainly_when_it_cannot_know(
    simulator_thread: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_manifest(tmp_path, prompts_jobs(1))
    monkeypatch.setenv("OCTOPUSX_API_KEY", DEMO_KEY)
    no_route = simulator_thread(usage=None)
    code, out, _ = _plan_check(path, no_route.base_url, capsys)
    assert code == 0
    assert out.endswith(
        f"key check: {no_route.base_url}/api/usage/token/ answered HTTP 404: 未找到 (no such "
        "platform route: /api/usage/token/); this provider may not offer the usage endpoint, "
        "so the key's quota is unknown\n")

    server = simulator_thread()
    monkeypatch.setenv("OCTOPUSX_API_KEY", "sk-wrong-key")
    code, out, _ = _plan_check(path, server.base_url, capsys)
    assert "key check: the provider refused the key (HTTP 401" in out
    assert out.endswith("; check OCTOPUSX_API_KEY\n") and "sk-wrong-key" not in out

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, _ = _plan_check(path, f"http://127.0.0.1:{port}", capsys)
    assert code == 0
    assert f"key check failed: cannot reach http://127.0.0.1:{port}/api/usage/token/ (" in out

    monkeypatch.delenv("OCTOPUSX_API_KEY")
    code, out, err = _plan_check(path, server.base_url, capsys)
    assert code == 2 and err.startswith("octobatch: set OCTOPUSX_API_KEY")
