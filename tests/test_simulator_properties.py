"""Properties of the simulator's pure parts, over many generated inputs."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octobatch.simulator.faults import FaultDice, Faults
from octobatch.simulator.validation import Rejected, check_omni
from octobatch.simulator.video import base_clip, video_for

T2V = {"model": "omni-fast", "prompt": "p", "aspect_ratio": "16:9"}


@given(st.integers(min_value=-100, max_value=100), st.booleans())
def test_omni_seconds_accepted_exactly_from_4_to_30(seconds: int, as_text: bool) -> None:
    body = {**T2V, "seconds": str(seconds) if as_text else seconds}
    if 4 <= seconds <= 30:
        assert check_omni("omni-fast", body).params["seconds"] == str(seconds)
    else:
        with pytest.raises(Rejected, match="seconds must be a whole number from 4 to 30"):
            check_omni("omni-fast", body)


@given(st.text(min_size=1, max_size=80), st.none() | st.integers(min_value=0, max_value=50_000))
def test_every_video_is_the_clip_plus_one_box_naming_the_task(task_id: str,
                                                               size: int | None) -> None:
    data = video_for(task_id, size)
    clip = base_clip()
    assert data.startswith(clip) and task_id.encode() in data[len(clip):]
    assert int.from_bytes(data[len(clip):len(clip) + 4], "big") == len(data) - len(clip)
    assert data[len(clip) + 4:len(clip) + 8] == b"free"
    if size is not None:
        assert len(data) >= size


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=4))
def test_first_n_counts_are_served_in_order(counts: list[int]) -> None:
    kinds = ["429", "500", "502", "503"]
    settings: dict[str, Any] = {f"poll_{kind}_first": n for kind, n in zip(kinds, counts)}
    dice = FaultDice(Faults(**settings), random.Random(0))
    expected = [kind for kind, n in zip(kinds, counts) for _ in range(n)] + [None, None]
    assert [dice.roll("poll") for _ in expected] == expected
    assert dice.roll("submit") is None
