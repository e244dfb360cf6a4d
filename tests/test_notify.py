"""`run --notify URL`: a JSON summary POSTed to a loopback receiver when the run ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import prompts_jobs, write_manifest

from octobatch import notify
from octobatch.cli import main
from octobatch.simulator import DEMO_KEY


class Receiver:
    """A webhook on loopback that records each POST and answers with `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 -- the http.server hook's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append({"path": self.path, "headers": dict(self.headers),
                                       "body": json.loads(body)})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()



def test_a_finished_run_posts_its_summary(cli_sim: Any, receiver: Receiver, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, [*prompts_jobs(2), {"id": "bad", "prompt": "no [fail]"}])
    assert main(["run", str(path), "--notify", receiver.url, "--poll-interval", "0.02",
                 "--quiet"]) == 1
    assert capsys.readouterr().err == ""
    (post,) = receiver.posts
    assert post["headers"]["Content-Type"] == "application/json"
    body = post["body"]
    assert body["text"] == (f"octobatch: {path} finished with failures: 2 completed, 1 failed, "
                            "0 unfinished of 3; spent 0.00")
    assert body["content"] == body["text"]  # what Discord-style webhooks display
    assert {k: body[k] for k in ("outcome", "total", "completed", "failed", "unfinished",
                                 "spent")} == {"outcome": "failed", "total": 3, "completed": 2,
                                               "failed": 1, "unfinished": 0, "spent": 0.0}
    assert body["gallery"] == str(tmp_path / "out" / "index.html")
    assert Path(body["gallery"]).is_file()
    assert DEMO_KEY not in json.dumps(post)


def test_a_failed_notification_is_reported_and_never_fails_the_run(
    cli_sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "BACKOFF", 0.01)
    broken = Receiver(status=503)
    try:
        path = write_manifest(tmp_path, prompts_jobs(1))
        started = time.monotonic()
        assert main(["run", str(path), "--notify", broken.url, "--poll-interval", "0.02",
                     "--quiet"]) == 0
        took = time.monotonic() - started
    finally:
        broken.close()
    port = broken.server.server_address[1]
    assert capsys.readouterr().err == (
        f"octobatch: notification to 127.0.0.1:{port} failed (HTTP 503, 3 attempts); "
        "the run itself is not affected\n")  # the host only: a webhook's path is a secret
    assert len(broken.posts) == 3
    print(f"run with three failed notification attempts took {took:.2f} s")


def test_a_receiver_that_never_answers_costs_the_timeout_per_attempt(
    cli_sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "TIMEOUT", 0.2)
    monkeypatch.setattr(notify, "BACKOFF", 0.01)
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        path = write_manifest(tmp_path, prompts_jobs(1))
        assert main(["run", str(path), "--notify", f"http://127.0.0.1:{port}/x",
                     "--poll-interval", "0.02", "--quiet"]) == 0
    assert capsys.readouterr().err == (
        f"octobatch: notification to 127.0.0.1:{port} failed (no answer within 0.2 s, "
        "3 attempts); the run itself is not affected\n")


def test_an_interrupted_run_posts_interrupted(receiver: Receiver, tmp_path: Path) -> None:
    path = write_manifest(tmp_path, prompts_jobs(1))
    env = {**os.environ, "OCTOBATCH_SIMULATE_LATENCY": "30"}
    child = subprocess.Popen(
        [sys.executable, "-m", "octobatch", "run", str(path), "--simulate", "--json",
         "--notify", receiver.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=tmp_path)
    assert child.stdout is not None
    for line in child.stdout:
        if '"submitted"' in line:
            break
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    (post,) = receiver.posts
    assert post["body"]["outcome"] == "interrupted"
    assert post["body"]["text"] == (f"octobatch: {path} was interrupted: 0 completed, 0 failed, "
                                    "1 unfinished of 1; spent 0.00")
