"""Following an event store's notification log, in order, exactly once.

The relay and every local projection are followers. Each pass locks the follower's row
in `ourvoice_followers`, reads the notifications after its position and hands them to the
follower's handler, all in one transaction, and moves the position on commit. So a
projection's rows and its position commit together, and when several instances of a
service run, one follows while the others find the row locked and wait their turn.

An idle follower sleeps until its store's doorbell rings: eventsourcing sends a
PostgreSQL NOTIFY with every append, so followers react within milliseconds and cost
nothing while nothing happens. A follower also looks once in a while without a ring, in
case a notification was missed while the database was away."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import psycopg
from eventsourcing.persistence import ApplicationRecorder, Notification
from psycopg import sql

from shared import metrics
from shared.config import Postgres
from shared.db import TRANSIENT, Database
from shared.logs import notifications_after

log = logging.getLogger(__name__)

# A handler may return how many of the notifications (from the first) it handled, when
# not all: the position then stops after the last of those (the relay does, at an event
# whose chain link does not hold).
Handler = Callable[[psycopg.Cursor, Sequence[Notification]], int | None]


class Doorbell:
    """Rings every follower of a store when the store's events table gets new rows."""

    # It waits for a notification this long at a time, and looks between two waits
    # whether it is to stop: a service's stop waits for it.
    LOOK_SECONDS = 0.25

    def __init__(self, pg: Postgres, channel: str):
        self.pg = pg
        self.channel = channel
        self.bells: list[threading.Event] = []
        self.running = True

    def bell(self) -> threading.Event:
        bell = threading.Event()
        self.bells.append(bell)
        return bell

    def ring(self) -> None:
        for bell in self.bells:
            bell.set()

    def listen(self) -> None:
        backoff = 0.5
        while self.running:
            try:
                with psycopg.connect(self.pg.conninfo(), autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.ring()  # whatever was appended while nobody listened
                    backoff = 0.5
                    while self.running:
                        for _ in conn.notifies(timeout=self.LOOK_SECONDS, stop_after=1):
                            self.ring()
            except TRANSIENT as error:
                log.warning("doorbell %s: %s; listening again in %.1fs", self.channel, error,
                            backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def stop(self) -> None:
        self.running = False


class LogFollower:
    def __init__(
        self,
        name: str,
        db: Database,
        recorder: ApplicationRecorder,
        handle: Handler,
        *,
        batch_size: int = 500,
        idle_seconds: float = 1.0,
        bell: threading.Event | None = None,
    ):
        self.name = name
        self.db = db
        self.recorder = recorder
        self.handle = handle
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.bell = bell or threading.Event()
        self.running = True
        self.registered = False

    def follow_once(self) -> int:
        """One pass; returns how many notifications it handled (0 when none or locked)."""
        handled = self._pass()
        committed = getattr(self.handle, "committed", None)
        if handled and committed is not None:  # a projection forgets what it changed
            committed()
        return handled

    def _pass(self) -> int:
        with self.db.transaction() as cursor:
            if not self.registered:
                cursor.execute(
                    "INSERT INTO ourvoice_followers (name) VALUES (%s) ON CONFLICT DO NOTHING",
                    (self.name,),
                )
                self.registered = True
            cursor.execute(
                "SELECT position FROM ourvoice_followers WHERE name = %s "
                "FOR UPDATE SKIP LOCKED",
                (self.name,),
            )
            row = cursor.fetchone()
            if row is None:
                return 0  # another instance is following this log right now
            notifications = self.read(cursor, row["position"])
            if not notifications:
                caught_up = getattr(self.handle, "caught_up", None)
                if caught_up is not None:  # the relay clears an alarm that no longer holds
                    caught_up(cursor)
                return 0
            handled = self.handle(cursor, notifications)
            done = notifications if handled is None else notifications[:handled]
            if done:
                cursor.execute(
                    "UPDATE ourvoice_followers SET position = %s WHERE name = %s",
                    (done[-1].id, self.name),
                )
            return len(done)

    def read(self, cursor: psycopg.Cursor, position: int) -> list[Notification]:
        """The notifications after `position`, read in the pass's own transaction rather
        than through the recorder's pool: one transaction per pass, not two."""
        return notifications_after(cursor, self.recorder.events_table_name, position,
                                   self.batch_size)

    def position(self) -> int:
        """Where the follower stands, whichever instance moved it last."""
        return position(self.db, self.name)

    def lag(self) -> int:
        """How many notifications the store holds beyond the follower's position."""
        head = self.recorder.max_notification_id() or 0
        return max(0, head - self.position())

    def run(self) -> None:
        """Follow until stopped; outages of the database or broker are waited out."""
        metrics.follow(self)
        try:
            self._follow()
        finally:
            metrics.unfollow(self)

    def _follow(self) -> None:
        backoff = 0.5
        while self.running:
            # Cleared before looking: an append during this pass rings again.
            self.bell.clear()
            try:
                handled = self.follow_once()
                backoff = 0.5
            except TRANSIENT + (ConnectionError, OSError) as error:
                log.warning("%s: %s; trying again in %.1fs", self.name, error, backoff)
                self.registered = False
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                log.exception("%s failed; trying again in %.1fs", self.name, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if handled < self.batch_size and self.running:
                self.bell.wait(self.idle_seconds)

    def stop(self) -> None:
        self.running = False
        self.bell.set()  # an idle follower wakes to see it


def position(db: Database, name: str) -> int:
    with db.transaction() as cursor:
        cursor.execute("SELECT position FROM ourvoice_followers WHERE name = %s", (name,))
        row = cursor.fetchone()
    return row["position"] if row else 0
