"""Following an event store's notification log, in order, exactly once.

The relay and every local projection are followers. Each pass locks the follower's row
in `ourvoice_followers`, reads the notifications after its position, hands them to the
follower's handler inside the same transaction and moves the position on commit. So a
projection's rows and its position commit together, and when several instances of a
service run, one follows while the others find the row locked and wait their turn."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import psycopg
from eventsourcing.persistence import ApplicationRecorder, Notification

from shared.db import TRANSIENT, Database

log = logging.getLogger(__name__)

Handler = Callable[[psycopg.Cursor, Sequence[Notification]], None]


class LogFollower:
    def __init__(
        self,
        name: str,
        db: Database,
        recorder: ApplicationRecorder,
        handle: Handler,
        *,
        batch_size: int = 500,
        idle_seconds: float = 0.02,
    ):
        self.name = name
        self.db = db
        self.recorder = recorder
        self.handle = handle
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.running = True

    def follow_once(self) -> int:
        """One pass; returns how many notifications it handled (0 when none or locked)."""
        with self.db.transaction() as cursor:
            cursor.execute(
                "INSERT INTO ourvoice_followers (name) VALUES (%s) ON CONFLICT DO NOTHING",
                (self.name,),
            )
            cursor.execute(
                "SELECT position FROM ourvoice_followers WHERE name = %s "
                "FOR UPDATE SKIP LOCKED",
                (self.name,),
            )
            row = cursor.fetchone()
            if row is None:
                return 0  # another instance is following this log right now
            notifications = self.recorder.select_notifications(
                start=row["position"], limit=self.batch_size, inclusive_of_start=False
            )
            if not notifications:
                return 0
            self.handle(cursor, notifications)
            cursor.execute(
                "UPDATE ourvoice_followers SET position = %s WHERE name = %s",
                (notifications[-1].id, self.name),
            )
            return len(notifications)

    def run(self) -> None:
        """Follow until stopped; outages of the database or broker are waited out."""
        backoff = self.idle_seconds
        while self.running:
            try:
                handled = self.follow_once()
                backoff = self.idle_seconds
            except TRANSIENT + (ConnectionError, OSError) as error:
                log.warning("%s: %s; trying again in %.1fs", self.name, error, backoff)
                handled = 0
                backoff = min(backoff * 2 if backoff > self.idle_seconds else 0.5, 5.0)
            except Exception:
                log.exception("%s failed; trying again", self.name)
                handled = 0
                backoff = min(max(backoff * 2, 0.5), 5.0)
            if handled < self.batch_size and self.running:
                time.sleep(backoff)

    def stop(self) -> None:
        self.running = False


def position(db: Database, name: str) -> int:
    with db.transaction() as cursor:
        cursor.execute("SELECT position FROM ourvoice_followers WHERE name = %s", (name,))
        row = cursor.fetchone()
    return row["position"] if row else 0
