"""Argument types for the command line: numbers with the range each flag allows."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def ranged(convert: Callable[[str], N], allowed: Callable[[N], bool], rule: str) -> Callable[[str], N]:
    """An argparse `type` that converts, then rejects values outside the range with `rule`."""

    def parse(text: str) -> N:
        value = convert(text)  # a ValueError becomes argparse's "invalid int value: 'x'"
        if not allowed(value):  # also rejects nan
            raise argparse.ArgumentTypeError(rule)
        return value

    parse.__name__ = convert.__name__
    return parse


positive_int = ranged(int, lambda v: v >= 1, "must be at least 1")
positive_float = ranged(float, lambda v: v > 0, "must be greater than 0")
count = ranged(int, lambda v: v >= 0, "must be 0 or more")
non_negative = ranged(float, lambda v: v >= 0, "must be 0 or more")
probability = ranged(float, lambda v: 0 <= v <= 1, "must be a probability from 0 to 1")


def webhook_url(text: str) -> str:
    """An http(s) URL with a host: where `--notify` POSTs its summary."""
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return text
