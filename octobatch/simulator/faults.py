"""What can go wrong on a bad night, as data: the `Faults` knobs and the seeded dice.

Every fault is off by default. Per-route faults come in two forms: a probability per request
(`submit_503=0.1`) for soak runs, and "the first N requests of this route" (`submit_503_first=2`)
for deterministic tests. The first-N counts run one after another in `ROUTE_FAULTS` order, so
`submit_429_first=2, submit_503_first=1` answers 429, 429, 503, then behaves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Literal

Route = Literal["submit", "poll", "download"]
ROUTES: tuple[Route, ...] = ("submit", "poll", "download")

# Outcome kinds in the order first-N counts are served.
#   429       rate limited, with a Retry-After header
#   429_bare  rate limited, no Retry-After (the client must pick its own backoff)
#   500/503   server errors; on submit nothing is created
#   502       a gateway error; on submit the task IS created upstream (the ambiguous case)
#   drop      the request is read, then the connection is closed without an answer; on submit
#             the task IS created (the double-billing case)
#   truncate  downloads only: full Content-Length announced, about half the bytes sent, closed
#   stall     downloads only: about half the bytes sent, then silence on an open connection
#   overlong  downloads only: a Content-Length larger than the body, then silence
#   html      downloads only: 200 with an HTML error page instead of the video
ROUTE_FAULTS: tuple[str, ...] = ("429", "429_bare", "500", "502", "503", "drop",
                                 "truncate", "stall", "overlong", "html")
DOWNLOAD_ONLY = frozenset({"truncate", "stall", "overlong", "html"})

UrlLocation = Literal["video_url", "metadata", "data", "content"]
ProgressStyle = Literal["int", "string", "percent"]


@dataclass(frozen=True)
class Faults:
    """Fault injection and vocabulary settings of a `Simulator`; see docs/simulator.md."""

    submit_429: float = 0.0
    submit_429_bare: float = 0.0
    submit_500: float = 0.0
    submit_502: float = 0.0
    submit_503: float = 0.0
    submit_drop: float = 0.0
    submit_429_first: int = 0
    submit_429_bare_first: int = 0
    submit_500_first: int = 0
    submit_502_first: int = 0
    submit_503_first: int = 0
    submit_drop_first: int = 0

    poll_429: float = 0.0
    poll_429_bare: float = 0.0
    poll_500: float = 0.0
    poll_502: float = 0.0
    poll_503: float = 0.0
    poll_drop: float = 0.0
    poll_429_first: int = 0
    poll_429_bare_first: int = 0
    poll_500_first: int = 0
    poll_502_first: int = 0
    poll_503_first: int = 0
    poll_drop_first: int = 0

    download_429: float = 0.0
    download_429_bare: float = 0.0
    download_500: float = 0.0
    download_502: float = 0.0
    download_503: float = 0.0
    download_drop: float = 0.0
    download_truncate: float = 0.0
    download_stall: float = 0.0
    download_overlong: float = 0.0
    download_html: float = 0.0
    download_429_first: int = 0
    download_429_bare_first: int = 0
    download_500_first: int = 0
    download_502_first: int = 0
    download_503_first: int = 0
    download_drop_first: int = 0
    download_truncate_first: int = 0
    download_stall_first: int = 0
    download_overlong_first: int = 0
    download_html_first: int = 0

    # A CDN's ways of spoiling a transfer that did start.
    cut_chunk_rate: float = 0.0  # chance per 64 KB chunk that the connection is cut inside it
    ignore_range: bool = False  # answer Range requests with 200 and the whole file
    object_changes: int = 0  # a task's file is replaced before each of its next N downloads
    download_gzip: bool = False  # gzip the body when the client accepts gzip
    url_ttl_cuts_downloads: bool = False  # a transfer still running when its URL expires is cut

    retry_after: float = 1.0  # seconds sent in Retry-After with the "429" fault
    response_delay: float = 0.0  # every API answer is held back this long ...
    response_delay_jitter: float = 0.0  # ... plus a uniform random 0..jitter seconds
    download_bytes_per_second: float = 0.0  # throttle downloads; 0 = as fast as possible
    url_ttl: float = 0.0  # result URLs expire after this many seconds; 0 = never
    concurrency_limit: int = 0  # per key: 429 beyond N unfinished tasks; 0 = unlimited
    honour_idempotency: bool = False  # same Idempotency-Key -> same task (undocumented upstream)
    # A network outage: `outage_at` seconds after start the server stops listening and drops
    # every open connection for `outage_seconds`, then serves again with the same tasks;
    # `outage_every` > 0 repeats it with that period (measured from one outage's start).
    outage_at: float = 0.0
    outage_seconds: float = 0.0
    outage_every: float = 0.0

    # Vocabulary: the different ways the provider's models describe the same state.
    status_running: str = "in_progress"  # or "processing", "running", ...
    status_completed: str = "completed"  # or "succeeded"
    status_upper: bool = False  # "COMPLETED"
    url_location: UrlLocation = "video_url"  # or metadata.url, data[0].url, only /content
    progress_style: ProgressStyle = "int"  # 50, "50" or "50%"
    empty_error_while_running: bool = False  # send `"error": {}` before the task ends
    task_id_prefix: str = "video_"  # e.g. "task:" for ids that need URL-encoding

    def __post_init__(self) -> None:
        for route in ROUTES:
            total = 0.0
            for kind in _kinds(route):
                p = getattr(self, f"{route}_{kind}")
                if not 0.0 <= p <= 1.0:
                    raise ValueError(f"{route}_{kind} must be a probability in 0..1, got {p}")
                total += p
                if getattr(self, f"{route}_{kind}_first") < 0:
                    raise ValueError(f"{route}_{kind}_first must be >= 0")
            if total > 1.0:
                raise ValueError(f"the {route} fault probabilities add up to more than 1")
        for name in ("retry_after", "response_delay", "response_delay_jitter",
                     "download_bytes_per_second", "url_ttl", "concurrency_limit",
                     "outage_at", "outage_seconds", "outage_every", "object_changes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0.0 <= self.cut_chunk_rate <= 1.0:
            raise ValueError(f"cut_chunk_rate must be a probability in 0..1, got "
                             f"{self.cut_chunk_rate}")
        if self.outage_every and self.outage_every <= self.outage_seconds:
            raise ValueError("outage_every must be longer than outage_seconds")
        if (self.outage_at or self.outage_every) and not self.outage_seconds:
            raise ValueError("outage_at and outage_every need outage_seconds")


def _kinds(route: Route) -> tuple[str, ...]:
    return ROUTE_FAULTS if route == "download" else tuple(
        kind for kind in ROUTE_FAULTS if kind not in DOWNLOAD_ONLY)


def fault_names() -> list[str]:
    """Every field of `Faults`, in declaration order (the CLI builds its flags from these)."""
    return [f.name for f in fields(Faults)]


class FaultDice:
    """Decides, per request, which fault (if any) a route suffers; reproducible from a seed."""

    def __init__(self, faults: Faults, rng: random.Random) -> None:
        self._rng = rng
        self._seen = dict.fromkeys(ROUTES, 0)
        self._first: dict[Route, list[tuple[int, str]]] = {}
        self._odds: dict[Route, list[tuple[float, str]]] = {}
        for route in ROUTES:
            edge, cumulative = 0, 0.0
            self._first[route], self._odds[route] = [], []
            for kind in _kinds(route):
                if n := getattr(faults, f"{route}_{kind}_first"):
                    edge += n
                    self._first[route].append((edge, kind))
                if p := getattr(faults, f"{route}_{kind}"):
                    cumulative += p
                    self._odds[route].append((cumulative, kind))

    def roll(self, route: Route) -> str | None:
        self._seen[route] += 1
        n = self._seen[route]
        for edge, kind in self._first[route]:
            if n <= edge:
                return kind
        odds = self._odds[route]
        if odds:
            u = self._rng.random()
            for edge_p, kind in odds:
                if u < edge_p:
                    return kind
        return None

    def cut_point(self, size: int, rate: float, chunk: int) -> int | None:
        """Where a body of `size` bytes is cut when each `chunk` is cut with chance `rate`
        (a random byte inside the chosen chunk), or None if it arrives whole."""
        if not rate:
            return None
        for start in range(0, size, chunk):
            if self._rng.random() < rate:
                return start + self._rng.randrange(min(chunk, size - start))
        return None
