"""Every fault of a bad night, survived: nothing lost, nothing paid twice unless uncertain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engine_helpers import FAST, Outcome, prompts_jobs, run_engine, submits, write_manifest

from octobatch.retry import RetryPolicy
from octobatch.simulator import Faults, Simulator
from octobatch.state import Status


def assert_complete_once(sim: Simulator, outcome: Outcome, n: int) -> None:
    """Every job done, its file byte-identical to what the provider made, one task per job."""
    assert outcome.result.ok and outcome.result.completed == n, outcome.named("unfinished")
    assert sum(sim.tasks_created_per_prompt().values()) == n
    for entry in outcome.state.jobs.values():
        assert entry.task_id and entry.output
        assert sim.expected_video(entry.task_id) == (outcome.lock_dir / entry.output).read_bytes()


async def run(sim: Simulator, tmp_path: Path, n: int = 3, **kwargs: Any) -> Outcome:
    return await run_engine(sim, write_manifest(tmp_path, prompts_jobs(n)), **kwargs)


@pytest.mark.parametrize(("faults", "with_retry_after"), [
    (Faults(submit_429_first=3, retry_after=0.01), True),
    (Faults(submit_429_bare_first=3), False),
], ids=["retry-after", "bare"])
async def test_429_on_submit_is_waited_out(make_simulator: Any, tmp_path: Path, faults: Faults,
                                           with_retry_after: bool) -> None:
    sim = await make_simulator(faults=faults)
    outcome = await run(sim, tmp_path)
    assert_complete_once(sim, outcome, 3)
    throttled = outcome.named("throttled")
    assert len(throttled) == 3 and all(e.retry_after is with_retry_after for e in throttled)
    assert not outcome.result.possible_duplicates  # a 429 created nothing


@pytest.mark.parametrize("faults", [Faults(submit_500_first=1), Faults(submit_503_first=1)],
                         ids=["500", "503"])
async def test_5xx_on_submit_is_uncertain_and_retried_with_the_same_key(
    make_simulator: Any, tmp_path: Path, faults: Faults
) -> None:
    sim = await make_simulator(faults=faults)
    outcome = await run(sim, tmp_path, n=1, concurrency=1)
    assert_complete_once(sim, outcome, 1)
    keys = [r.idempotency_key for r in submits(sim)]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert outcome.result.possible_duplicates == ("clip-0",)
    assert outcome.state.jobs["clip-0"].possible_duplicate is True
    assert [e.attempt for e in outcome.named("uncertain")] == [1]


@pytest.mark.parametrize(("honour", "created"), [(True, 1), (False, 2)])
async def test_dropped_connection_after_submit(make_simulator: Any, tmp_path: Path,
                                              honour: bool, created: int) -> None:
    sim = await make_simulator(faults=Faults(submit_drop_first=1, honour_idempotency=honour))
    outcome = await run(sim, tmp_path, n=1)
    assert outcome.result.ok
    # The provider saw the same key twice; only an honouring provider avoids the duplicate,
    # and either way the user is told.
    assert len({r.idempotency_key for r in submits(sim)}) == 1
    assert sim.tasks_created_per_prompt() == {"clip number 0": created}
    assert outcome.result.possible_duplicates == ("clip-0",)


async def test_uncertain_submissions_are_bounded(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(faults=Faults(submit_502_first=10))
    outcome = await run(sim, tmp_path, n=1)
    assert len(submits(sim)) == FAST.uncertain_attempts
    entry = outcome.state.jobs["clip-0"]
    assert entry.status is Status.FAILED and (entry.error or {}).get("code") == "uncertain"
    assert entry.possible_duplicate and entry.attempts == FAST.uncertain_attempts
    assert not outcome.result.ok


async def test_breaker_pauses_submissions_and_bounds_uncertain_ones(
    make_simulator: Any, tmp_path: Path
) -> None:
    # Every POST answered 503: the breaker opens after 4 and lets one probe through per
    # cool-down; each job stops at its bound of uncertain attempts, and the run ends.
    sim = await make_simulator(faults=Faults(submit_503=1.0))
    policy = RetryPolicy(base=0.001, cap=0.01, breaker_threshold=4, breaker_cooldown=0.01,
                         breaker_cooldown_cap=0.02)
    outcome = await run(sim, tmp_path, n=3, concurrency=1, policy=policy)
    assert len(submits(sim)) == 3 * policy.uncertain_attempts
    paused = outcome.named("submissions_paused")
    assert paused and "server errors" in paused[0].reason
    assert [e.retry_in for e in paused[:3]] == [0.01, 0.02, 0.02]  # growing, capped
    assert all(e.status is Status.FAILED for e in outcome.state.jobs.values())
    assert outcome.result.submissions_stopped is None and not sim.tasks


async def test_breaker_closes_on_a_successful_probe(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(faults=Faults(submit_503_first=6, honour_idempotency=True))
    policy = RetryPolicy(base=0.001, cap=0.01, breaker_threshold=4, breaker_cooldown=0.01)
    outcome = await run(sim, tmp_path, n=6, concurrency=1, policy=policy)
    # clip-0 and clip-1 spend their three uncertain attempts on the six 503s (the last two
    # as the breaker's probes); the seventh POST, a probe, succeeds and closes it.
    assert len(outcome.named("submissions_paused")) == 3
    assert outcome.result.completed == 4 and outcome.result.failed == 2
    assert len(submits(sim)) == 6 + 4


@pytest.mark.parametrize("faults", [
    Faults(poll_500_first=2, poll_503_first=1, poll_502_first=1),
    Faults(poll_drop_first=3),
    Faults(poll_429_first=2, poll_429_bare_first=2, retry_after=0.01),
], ids=["5xx", "drop", "429"])
async def test_poll_faults(make_simulator: Any, tmp_path: Path, faults: Faults) -> None:
    sim = await make_simulator(faults=faults)
    outcome = await run(sim, tmp_path)
    assert_complete_once(sim, outcome, 3)
    assert not outcome.result.possible_duplicates


@pytest.mark.parametrize("faults", [
    Faults(download_500_first=1, download_503_first=1, download_502_first=1),
    Faults(download_drop_first=2),
    Faults(download_truncate_first=3),
    Faults(download_429_first=1, retry_after=0.01),
], ids=["5xx", "drop", "truncate", "429"])
async def test_download_faults_never_resubmit(make_simulator: Any, tmp_path: Path,
                                              faults: Faults) -> None:
    sim = await make_simulator(faults=faults, video_bytes=200_000)
    outcome = await run(sim, tmp_path)
    assert_complete_once(sim, outcome, 3)
    assert len(submits(sim)) == 3
    assert not list((tmp_path / "out").glob("*.part"))


async def test_expired_url_is_refreshed_by_polling(make_simulator: Any, tmp_path: Path) -> None:
    # The 429's Retry-After outlasts the link: the retry meets 403 and must poll for a new one.
    sim = await make_simulator(faults=Faults(url_ttl=0.15, download_429_first=1,
                                             retry_after=0.3))
    outcome = await run(sim, tmp_path, n=1, policy=RetryPolicy(base=0.001, cap=0.01))
    assert_complete_once(sim, outcome, 1)
    codes = [r.status for r in sim.requests if r.kind == "download"]
    assert codes[0] == 429 and codes[-1] == 200 and 403 in codes
    assert len(submits(sim)) == 1


async def test_failed_tasks_are_reported(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator()
    path = write_manifest(tmp_path, [{"id": "x", "prompt": "nope [fail]"}])
    outcome = await run_engine(sim, path)
    [failed] = outcome.named("failed")
    assert failed.code == "generation_failed" and "视频生成失败" in failed.message
    assert outcome.result.failed == 1 and len(submits(sim)) == 1


@pytest.mark.parametrize("faults", [
    Faults(status_running="processing", status_completed="succeeded", progress_style="percent"),
    Faults(status_upper=True, url_location="metadata", empty_error_while_running=True),
    Faults(url_location="data", progress_style="string", task_id_prefix="task:x/"),
    Faults(url_location="content"),
], ids=["succeeded", "upper-metadata", "data-odd-id", "content-route"])
async def test_vocabulary_variants(make_simulator: Any, tmp_path: Path, faults: Faults) -> None:
    sim = await make_simulator(faults=faults)
    outcome = await run(sim, tmp_path)
    assert_complete_once(sim, outcome, 3)
    assert not outcome.named("unknown_status")


async def test_unknown_status_is_surfaced_and_not_polled_forever(
    make_simulator: Any, tmp_path: Path
) -> None:
    # No queued phase: every poll answers the unknown word, so the count below is exact.
    sim = await make_simulator(faults=Faults(status_running="thinking"), latency=0.0)
    path = write_manifest(tmp_path, [{"id": "odd", "prompt": "never ends [stuck]"}])
    outcome = await run_engine(sim, path, policy=RetryPolicy(base=0.001, cap=0.01,
                                                             unknown_status_polls=4))
    [unknown] = outcome.named("unknown_status")
    assert unknown.status == "thinking"
    assert outcome.named("unfinished") and sim.polls_per_task[unknown.task_id] == 4
    assert outcome.state.jobs["odd"].task_id == unknown.task_id  # kept: a rerun polls it


async def test_per_key_concurrency_limit(make_simulator: Any, tmp_path: Path) -> None:
    sim = await make_simulator(faults=Faults(concurrency_limit=2), latency=0.05)
    policy = RetryPolicy(base=0.005, cap=0.02)
    outcome = await run(sim, tmp_path, n=6, concurrency=6, policy=policy)
    assert_complete_once(sim, outcome, 6)
    assert sim.peak_in_flight <= 2 and outcome.named("throttled")
    assert outcome.result.learned_limit == 2


async def test_bad_key_stops_submissions_at_once(simulator: Simulator, tmp_path: Path) -> None:
    outcome = await run(simulator, tmp_path, n=4, concurrency=1, api_key="sk-wrong")
    assert len(submits(simulator)) == 1 and not simulator.tasks
    [stopped] = outcome.named("submissions_stopped")
    assert "rejected (invalid or expired)" in stopped.reason and "sk-wrong" not in stopped.reason
    assert outcome.result.unfinished == 4
    assert all(e.status is Status.PENDING for e in outcome.state.jobs.values())
