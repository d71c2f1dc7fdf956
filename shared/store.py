"""Event stores: each deciding service keeps its events in its own PostgreSQL tables
(`<service>_events`, `<service>_tracking`) through an eventsourcing Application, and
runs beside it the relay and the projections that follow its notification log."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import eventlet
import psycopg
from eventsourcing.application import Application, project_aggregate
from eventsourcing.persistence import Notification, ProcessRecorder, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.utils import resolve_topic
from nameko.extensions import DependencyProvider
from psycopg import sql

from shared.chain import ensure_chain
from shared.config import Postgres, ensure_database
from shared.db import Database, migration_lock
from shared.follower import Doorbell, LogFollower
from shared.relay import ConfirmedPublisher, Relay
from shared.settings import settings


class CaseStore(Application):
    """An event store whose events can be recorded together with the tracking of the
    message that caused them (a process recorder), so a consumer acts once."""

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def record(self, *aggregates: Any, tracking: Tracking | None = None,
               trackings: Sequence[Tracking] = ()) -> None:
        """The aggregates' new events, with the tracking of the message that caused them,
        or of every message of a batch (`trackings`), in one transaction."""
        events = [e for aggregate in aggregates for e in aggregate.collect_events()]
        if len(trackings) == 1 and tracking is None:
            # One goes as eventsourcing's own, which every recorder takes (in memory too).
            tracking, trackings = trackings[0], ()
        if trackings and not isinstance(self.recorder, BatchTrackingRecorder):
            raise TypeError("only a store on PostgreSQL records the tracking of a batch")
        self.events.put(events, tracking=tracking, trackings=trackings)

    def aggregates(self, cursor: psycopg.Cursor, ids: Sequence[Any]) -> list[Any]:
        """The aggregates of `ids` as recorded now (those that exist, in that order), all
        in one query rather than one each: their events replayed as the repository
        would, read through `cursor` (a transaction of the caller's)."""
        cursor.execute(
            sql.SQL("SELECT originator_id, originator_version, topic, state FROM {} "
                    "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
                    ).format(sql.Identifier(self.recorder.events_table_name)), (list(ids),))
        events: dict = {}
        for row in cursor.fetchall():
            stored = StoredEvent(row["originator_id"], row["originator_version"], row["topic"],
                                 bytes(row["state"]))
            events.setdefault(row["originator_id"], []).append(self.mapper.to_domain_event(stored))
        return [project_aggregate(None, events[key]) for key in ids if key in events]


class BatchTrackingRecorder(PostgresProcessRecorder):
    """eventsourcing's process recorder, which records the tracking row of one message
    with the events it caused, taking as well the rows of a whole batch of messages
    (`trackings`): a consumer then records a batch in one transaction. A row there
    already (a redelivery) fails the whole transaction, as one message's does."""

    def _insert_events(self, curs, stored_events, **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        trackings: Sequence[Tracking] = kwargs.get("trackings", ())
        if trackings:
            self._check_has_multi_row_tracking_table(curs)
            curs.executemany(self.insert_tracking_statement, [
                {"application_name": t.application_name, "notification_id": t.notification_id}
                for t in trackings])


Store = TypeVar("Store", bound=CaseStore)


def open_store(store_class: type[Store], pg: Postgres | None = None) -> Store:
    """A store on the configured database, its tables (and hash chain) created if missing."""
    pg = pg or Postgres.from_env()
    ensure_database(pg)
    with migration_lock(pg):
        store = store_class(env=pg.eventsourcing_env())
        with psycopg.connect(pg.conninfo()) as conn:
            ensure_chain(conn, store_class.name)
        return store


@dataclass(frozen=True)
class Projection:
    """A read model kept from a store's own events, in order, in the same transaction as
    its position: `apply(cursor, domain_event)` for each event of the log."""

    name: str
    ddl: Sequence[str]
    apply: Callable[[psycopg.Cursor, Any], None]
    # Called once a pass that wrote to this read model's rows has committed: what the
    # service keeps in memory from them is forgotten, or who waits on them is told.
    changed: Callable[[], None] | None = None
    # Which of the log's stored events `apply` has anything to do with (None: all); the
    # others are passed over without being decoded.
    takes: Callable[[Notification], bool] | None = None

    def handler(self, store: CaseStore):
        wrote = False

        def handle(cursor, notifications):
            nonlocal wrote
            with pipelined(cursor) as writes:
                for notification in notifications:
                    if self.takes is None or self.takes(notification):
                        self.apply(writes, store.mapper.to_domain_event(notification))
            wrote = wrote or writes.wrote

        def committed() -> None:
            nonlocal wrote
            if wrote and self.changed is not None:
                self.changed()
            wrote = False

        handle.committed = committed
        return handle


@dataclass(frozen=True)
class Subscriber:
    """A read model kept from public events delivered by the broker: `apply(cursor,
    batch)` takes (source, envelope) pairs; `consumer` is the service whose tracking
    table records every (source, position) the live model applied."""

    name: str
    consumer: str
    ddl: Sequence[str]
    apply: Callable[[object, Sequence[tuple[str, dict]]], None]


def of_kinds(kinds) -> Callable[[Notification], bool]:
    """A projection's `takes` for one that applies only events of these classes."""
    wanted = frozenset(kinds)
    return lambda notification: resolve_topic(notification.topic) in wanted


def of_names(names) -> Callable[[Notification], bool]:
    """A projection's `takes` for one that applies only events of these class names (the
    keys of its table of steps)."""
    wanted = frozenset(names)
    return lambda notification: resolve_topic(notification.topic).__name__ in wanted


class Writes:
    """What a projection's `apply` writes through: statements only (a projection never
    reads back), so a run of the same statement for consecutive events is sent as one
    `executemany`, in the order the events came."""

    # Sent in runs of at most this many, so the server works on one while the next is made.
    SEND_EVERY = 100

    def __init__(self, cursor: psycopg.Cursor):
        self.cursor = cursor
        self.query: Any = None
        self.rows: list[Sequence[Any]] = []
        self.wrote = False

    def execute(self, query: Any, params: Sequence[Any] = ()) -> None:
        self.wrote = True
        if query != self.query or len(self.rows) >= self.SEND_EVERY:
            self.flush()
            self.query = query
        self.rows.append(params)

    def flush(self) -> None:
        if self.rows:
            self.cursor.executemany(self.query, self.rows)
            self.rows = []


@contextmanager
def pipelined(cursor: psycopg.Cursor) -> Iterator[Writes]:
    """What a read model writes of a batch, through `Writes`, pipelined: its statements
    go out without waiting on each reply, so a batch (a replay's thousands of events, a
    consumer's hundreds) is not one network round trip, and one wait, per statement."""
    writes = Writes(cursor)
    with cursor.connection.pipeline():
        yield writes
        writes.flush()


class EventStore(DependencyProvider):
    """Gives a service's workers its store, and runs its relay and projections."""

    def __init__(self, store_class: type[CaseStore], projections: Sequence[Projection] = ()):
        self.store_class = store_class
        self.projections = projections
        self.store: CaseStore | None = None
        self.followers: list[LogFollower] = []
        self.threads: list = []

    def setup(self) -> None:
        from shared import migrations

        pg = Postgres.from_env()
        ensure_database(pg)
        migrations.bring_up_to_date(self.container, pg)
        self.store = open_store(self.store_class)
        self.db = Database(max_size=2)
        source = self.store_class.name
        idle = settings().poll_seconds
        self.doorbell = Doorbell(Postgres.from_env(), self.store.recorder.channel_name)
        self.publisher = ConfirmedPublisher(self.container.config["AMQP_URI"])
        self.followers = [
            LogFollower(f"relay:{source}", self.db, self.store.recorder,
                        Relay(source, self.store, self.publisher), idle_seconds=idle,
                        bell=self.doorbell.bell()),
            *(
                LogFollower(f"projection:{p.name}", self.db, self.store.recorder,
                            p.handler(self.store), idle_seconds=idle,
                            bell=self.doorbell.bell())
                for p in self.projections
            ),
        ]

    # What a stop waits for the relay and projections to end their pass under way (and
    # the doorbell its wait): one that waits out an outage meanwhile is left to the
    # container, which kills it.
    STOP_SECONDS = 1.5

    def start(self) -> None:
        self.threads = [
            self.container.spawn_managed_thread(self.doorbell.listen, identifier="doorbell"),
            *(self.container.spawn_managed_thread(follower.run, identifier=follower.name)
              for follower in self.followers)]

    def stop(self) -> None:
        self.kill()
        with eventlet.Timeout(self.STOP_SECONDS, False):
            for thread in self.threads:
                try:
                    thread.wait()
                except Exception:  # the container has reported it already
                    pass

    def kill(self) -> None:
        self.doorbell.stop()
        for follower in self.followers:
            follower.stop()

    def get_dependency(self, worker_ctx) -> CaseStore:
        return self.store
