"""Reading event stores with plain SQL: a service's own for its part of a case's history
(see history.py), every store's for rebuilding read models and verifying the hash chains.

Stored events are read with plain SQL on the caller's own connection (no event-store
application and its connection pool per store) and decoded with the store's own mapper,
the one its service writes with. Each function is given the store's class (its `name`
is its tables' prefix): this kernel knows no service; the `ourvoice` command finds the
stores through its registry."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from eventsourcing.persistence import Mapper, Notification
from psycopg import sql

from shared.events import DATA_SCHEMAS, public_event


@cache
def mapper(store: type) -> Mapper:
    """The store's mapper, from an in-memory instance of its application: the same
    transcodings, topics and (if configured) cipher and compression, no connections."""
    return store(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper


COLUMNS = "notification_id, originator_id, originator_version, topic, state"


def notification(row: tuple) -> Notification:
    notification_id, originator_id, version, topic, state = row
    return Notification(id=notification_id, originator_id=originator_id,
                        originator_version=version, topic=topic, state=bytes(state))


def notifications_after(cursor, events_table: str, position: int, limit: int,
                        stop: int | None = None) -> list[Notification]:
    """The store's notifications after `position` (up to `stop`), in log order, on the
    caller's connection: a follower reads them in the transaction that moves its
    position."""
    cursor.execute(sql.SQL(
        "SELECT " + COLUMNS + " FROM {} WHERE notification_id > %s"
        + (" AND notification_id <= %s" if stop is not None else "")
        + " ORDER BY notification_id LIMIT %s"
    ).format(sql.Identifier(events_table)),
        [position, *([stop] if stop is not None else []), limit], prepare=True)
    return [notification(row) for row in _tuples(cursor.fetchall())]


def decode(store: type, row: tuple) -> Any:
    """A row of (notification_id, originator_id, originator_version, topic, state) as
    the domain event it stores."""
    return mapper(store).to_domain_event(notification(row))


def stream_events(cursor, store: type, originator_ids: Iterable) -> list[tuple[int, Any]]:
    """(notification id, domain event) of the given aggregates, in log order."""
    ids = list(originator_ids)
    if not ids:
        return []
    cursor.execute(sql.SQL(
        "SELECT " + COLUMNS + " FROM {} WHERE originator_id = ANY(%s) ORDER BY notification_id"
    ).format(sql.Identifier(f"{store.name}_events")), (ids,))
    return [(row[0], decode(store, row)) for row in _tuples(cursor.fetchall())]


def _tuples(rows: list) -> list[tuple]:
    # Callers may hold dict-row cursors (the services' pools) or tuple ones.
    return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]


@dataclass(frozen=True)
class Published:
    """A stored event the relay publishes, with the source and position consumers record
    as processed."""

    occurred_at: Any
    source: str
    position: int
    domain_event: Any

    def __lt__(self, other: Published) -> bool:  # time, then store and log order
        return (self.occurred_at, self.source, self.position) < \
            (other.occurred_at, other.source, other.position)

    @property
    def envelope(self) -> dict:
        return public_event(self.source, self.position, self.domain_event)


def published(store: type, rows: Iterable[tuple]) -> Iterator[Published]:
    """The public events among a store's rows (in log order); the rest stay inside."""
    for row in rows:
        domain_event = decode(store, tuple(row))
        if type(domain_event).__name__ in DATA_SCHEMAS:
            yield Published(domain_event.timestamp, store.name, row[0], domain_event)


def in_time_order(streams: Iterable[Iterator[Published]]) -> Iterator[Published]:
    """Several stores' public events merged by when they happened. Each store's log is
    kept in its own order (which is the order its aggregates' events were decided), so
    the merge is by time across stores and by position within one."""
    return heapq.merge(*streams)


class StoreLog:
    """A store's notification log read with plain SQL on a pool of ours, with the
    store's mapper: enough of an event-store application for a `LogFollower` and for
    `rebuild`, without opening the store's own connection pool."""

    def __init__(self, db, store: type):
        self.db = db
        self.name = store.name
        self.mapper = mapper(store)
        self.recorder = self
        self.events_table_name = f"{store.name}_events"  # as eventsourcing names it

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             *, inclusive_of_start: bool = True) -> list[Notification]:
        after = (start or 0) - (1 if inclusive_of_start and start else 0)
        with self.db.transaction() as cursor:
            return notifications_after(cursor, self.events_table_name, after, limit, stop)
