"""What every event would otherwise read again from the database, kept in memory.

Routing reads the directory's amendments for every case it routes and notifications the
webhooks subscribed for every event it takes; both change a few times a year. A
`Remembered` value is read again once `seconds` have passed, and at once after this
process's projection of it committed a change (see `shared.store.Projection.changed`).
Another instance's change, projected by whichever instance holds the log at the time, is
seen within `seconds`: that is the documented delay (README, Scaling: "Directory
amendments and webhooks: how soon they count")."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# Amendments and new webhooks count everywhere within this long.
REREAD_SECONDS = 2.0


class Remembered(Generic[T]):
    def __init__(self, seconds: float = REREAD_SECONDS, *,
                 clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.value: T | None = None
        self.read_at: float | None = None
        # Counts what was forgotten: a read under way when a change committed may have
        # seen the rows before it, so its value is handed out once but not kept.
        self.generation = 0

    def get(self, read: Callable[[], T]) -> T:
        """The value remembered, or `read()`'s when it is older than `seconds` or was
        forgotten since."""
        if self.read_at is not None and self.clock() - self.read_at < self.seconds:
            return self.value  # type: ignore[return-value]
        generation, started = self.generation, self.clock()
        value = read()
        if generation == self.generation:
            self.value, self.read_at = value, started
        return value

    def forget(self) -> None:
        """A change committed: the next `get` reads again."""
        self.generation += 1
        self.read_at = None
        self.value = None
