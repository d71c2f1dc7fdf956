"""Limits on what one client may ask of a service: token buckets per client address, in
this process's memory (their sizes are settings, shared/settings.py).

Each instance of a service keeps its own buckets, so with N instances behind a balancer a
client may go up to N times a configured rate; a limit that must hold across instances
belongs at the proxy in front of them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Buckets of clients that have been quiet long enough to be full again are forgotten
# once this many are kept, so a scan from many addresses cannot grow memory without end.
MAX_CLIENTS = 50_000


class RateLimit:
    """`per_minute` requests per client, in bursts of up to as many; 0 means no limit."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    def _tokens(self, client: str, now: float) -> float:
        tokens, then = self.buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - then) * self.refill_per_second)

    def wait(self, client: str) -> float | None:
        """None if the client may go ahead now, else the seconds until it may; takes
        nothing (for limits that count only failures, such as wrong keys)."""
        if self.capacity <= 0:
            return None
        tokens = self._tokens(client, self.clock())
        return None if tokens >= 1.0 else (1.0 - tokens) / self.refill_per_second

    def admit(self, client: str) -> float | None:
        """Like `wait`, and takes one when the client may go ahead."""
        if self.capacity <= 0:
            return None
        now = self.clock()
        tokens = self._tokens(client, now)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.refill_per_second
        self.buckets[client] = (tokens - 1.0, now)
        if len(self.buckets) > MAX_CLIENTS:
            self._forget_full(now)
        return None

    def _forget_full(self, now: float) -> None:
        for client in list(self.buckets):
            if self._tokens(client, now) >= self.capacity:
                del self.buckets[client]


def retry_after(seconds: float) -> str:
    """The Retry-After header's value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))

