"""The per-client limit on submissions: a token bucket per client address, in this
process's memory. Each instance of intake keeps its own buckets, so with N instances
behind a balancer a client may submit up to N times the configured rate."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

from nameko.extensions import DependencyProvider

# Many citizens reach the internet through one carrier-grade NAT address, so the default
# is a guard against floods, not a limit on one person.
DEFAULT_PER_MINUTE = 600
# Buckets of clients that have been quiet long enough to be full again are forgotten
# once this many are kept, so a scan from many addresses cannot grow memory without end.
MAX_CLIENTS = 50_000


class SubmissionLimit:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    def admit(self, client: str) -> float | None:
        """None if the client may submit now, else the seconds until it may."""
        if self.capacity <= 0:
            return None  # no limit configured
        now = self.clock()
        tokens, then = self.buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.refill_per_second)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.refill_per_second
        self.buckets[client] = (tokens - 1.0, now)
        if len(self.buckets) > MAX_CLIENTS:
            self._forget_full(now)
        return None

    def _forget_full(self, now: float) -> None:
        for client, (tokens, then) in list(self.buckets.items()):
            if tokens + (now - then) * self.refill_per_second >= self.capacity:
                del self.buckets[client]


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def configured_per_minute() -> int:
    value = os.environ.get("OURVOICE_SUBMISSIONS_PER_MINUTE", str(DEFAULT_PER_MINUTE))
    try:
        per_minute = int(value)
    except ValueError:
        raise ValueError("OURVOICE_SUBMISSIONS_PER_MINUTE must be a whole number "
                         "(0 turns the limit off)") from None
    if per_minute < 0:
        raise ValueError("OURVOICE_SUBMISSIONS_PER_MINUTE must not be negative")
    return per_minute


class SubmissionLimitProvider(DependencyProvider):
    """One limit per process, shared by every worker of the service."""

    def setup(self) -> None:
        self.limit = SubmissionLimit(configured_per_minute())

    def get_dependency(self, worker_ctx) -> SubmissionLimit:
        return self.limit
