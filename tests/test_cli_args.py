"""Out-of-range numbers on the command line are usage errors (exit 2) that name the rule."""

import pytest

from octobatch.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "m.yaml", "--concurrency", "0"], "argument --concurrency: must be at least 1"),
        (["run", "m.yaml", "--poll-interval", "-1"], "argument --poll-interval: must be greater than 0"),
        (["run", "m.yaml", "--timeout", "nan"], "argument --timeout: must be greater than 0"),
        (["run", "m.yaml", "--timeout", "soon"], "argument --timeout: invalid float value: 'soon'"),
        (["simulate", "--fail-rate", "1.5"], "argument --fail-rate: must be a probability from 0 to 1"),
        (["simulate", "--latency", "-2"], "argument --latency: must be 0 or more"),
        (["simulate", "--video-bytes", "-1"], "argument --video-bytes: must be 0 or more"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    assert "--retry-failed" in capsys.readouterr().out
