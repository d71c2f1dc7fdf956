"""Rebuilding a read model from events, beside the live one, then swapping.

The new tables are built in a schema of their own while the services run; to finish,
the live model is paused, the rebuild catches up to exactly what the live one has
applied, the two are compared row for row, and in one transaction the new tables
replace the old. Two kinds of read model:

- a `Projection` follows its own store's log (routing's office queue, intake's case
  list): paused by locking its follower's row, caught up to the same position;
- a `Subscriber` is fed by the broker with the public events of every store (the
  reports, the citizen's case view): its events are replayed from the stores' logs,
  as the relays publish them, in time order; it is paused by locking its service's
  tracking table, and caught up to exactly the events that table says it applied.

The read models and the stores are given by the caller (the `ourvoice` command finds
them through its registry, `ourvoice/projections.py`): this kernel knows no service."""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from psycopg import sql
from psycopg.rows import tuple_row

from shared.db import Database
from shared.events import envelope_of
from shared.logs import COLUMNS, Published, in_time_order, notifications_after, published
from shared.store import CaseStore, Projection, Subscriber

BATCH = 1000
# A model's secondary indexes are made once its rebuilt tables hold the bulk of the
# history: one sort per index at the end costs far less than keeping each index up to
# date row after row. A model writes only by primary key, so its replay never needs them.
_SECONDARY_INDEX = re.compile(r"\s*CREATE INDEX ", re.IGNORECASE)
# Events a subscriber's rebuild reads, merges and writes at once: the more, the fewer
# statements (the rows of one case are merged in memory first); 20,000 stay small in memory.
CHUNK = 20_000


def tables_of(projection: Projection | Subscriber) -> list[str]:
    """The model's own tables; a subscriber's tracking table belongs to its service."""
    found = [m.group(1) for ddl in projection.ddl
             if (m := re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", ddl))]
    if isinstance(projection, Subscriber):
        found = [t for t in found if t != f"{projection.consumer}_tracking"]
    return found


@dataclass
class Outcome:
    events: int
    position: int
    differences: dict[str, int]  # table -> rows in one and not the other


def _replay(cursor, store: CaseStore, projection: Projection, start: int, stop: int | None,
            progress: Callable[[int], None] | None) -> tuple[int, int]:
    handle = projection.handler(store)
    position, count = start, 0
    while True:
        # Read on the rebuild's own connection, as followers read their log.
        batch = notifications_after(cursor, f"{store.name}_events", position, BATCH, stop)
        if not batch:
            return position, count
        handle(cursor, batch)
        position, count = batch[-1].id, count + len(batch)
        if progress:
            progress(len(batch))


def rebuild(db: Database, store: CaseStore, projection: Projection, *, swap: bool,
            progress: Callable[[int], None] | None = None) -> Outcome:
    schema, in_schema, indexes = _fresh_schema(db, projection.name, projection.ddl)
    follower = f"projection:{projection.name}"
    # The bulk of the history, in batches, while the live projection goes on; never past
    # where the live one is, so the two can be compared at the same position.
    with db.transaction() as cursor:
        cursor.execute("SELECT position FROM ourvoice_followers WHERE name = %s", (follower,))
        row = cursor.fetchone()
    live_at_start = row["position"] if row else 0
    position, total = 0, 0
    with _collector_paused() as collect:
        while position < live_at_start:
            with db.transaction() as cursor:
                cursor.execute(in_schema)
                end, count = _replay(cursor, store, projection, position,
                                     min(position + BATCH * 10, live_at_start), progress)
            collect()
            if count == 0:
                break
            position, total = end, total + count
    _make_indexes(db, in_schema, indexes)
    with db.transaction() as cursor:
        # Pause the live projection where it is, and bring the rebuild to the same place.
        cursor.execute("INSERT INTO ourvoice_followers (name) VALUES (%s) ON CONFLICT DO NOTHING",
                       (follower,))
        cursor.execute("SELECT position FROM ourvoice_followers WHERE name = %s FOR UPDATE",
                       (follower,))
        live = cursor.fetchone()["position"]
        if live > position:
            cursor.execute(in_schema)
            position, count = _replay(cursor, store, projection, position, live, progress)
            total += count
            cursor.execute("SET LOCAL search_path TO public")
        differences = _compare(cursor, schema, tables_of(projection))
        if swap and position >= live:
            _swap(cursor, schema, tables_of(projection))
            cursor.execute("UPDATE ourvoice_followers SET position = %s WHERE name = %s",
                           (position, follower))
        cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return Outcome(events=total, position=position, differences=differences)


def _compare(cursor, schema: str, tables: list[str]) -> dict[str, int]:
    """Rows in one and not the other, per table (duplicates counted)."""
    differences = {}
    for table in tables:
        new, old = (sql.Identifier(schema, table), sql.Identifier("public", table))
        cursor.execute(sql.SQL(
            "SELECT (SELECT count(*) FROM (SELECT * FROM {new} EXCEPT ALL SELECT * FROM {old}) a)"
            " + (SELECT count(*) FROM (SELECT * FROM {old} EXCEPT ALL SELECT * FROM {new}) b)"
            " AS n").format(new=new, old=old))
        differences[table] = cursor.fetchone()["n"]
    return differences


def _swap(cursor, schema: str, tables: list[str]) -> None:
    for table in tables:
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("public", table)))
        cursor.execute(sql.SQL("ALTER TABLE {} SET SCHEMA public").format(
            sql.Identifier(schema, table)))


def _fresh_schema(db: Database, name: str,
                  ddl: Sequence[str]) -> tuple[str, sql.Composed, list[str]]:
    """The rebuild's schema with the model's tables, and the secondary indexes left to
    make once the bulk is in."""
    schema = "rebuild_" + re.sub(r"\W", "_", name)
    in_schema = sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema))
    indexes = [statement for statement in ddl if _SECONDARY_INDEX.match(statement)]
    with db.transaction() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cursor.execute(in_schema)
        for statement in ddl:
            if statement not in indexes:
                cursor.execute(statement)
    return schema, in_schema, indexes


def _make_indexes(db: Database, in_schema: sql.Composed, indexes: Sequence[str]) -> None:
    with db.transaction() as cursor:
        cursor.execute(in_schema)
        for statement in indexes:
            cursor.execute(statement)


# -- read models fed by the broker ------------------------------------------------------
def _applied(cursor, store: str, tracking: sql.Identifier, rows_after: int = 0,
             only: Sequence[int] | None = None) -> Iterator[tuple]:
    """Rows of a store's events that the live model applied, in log order."""
    query = sql.SQL(
        "SELECT " + ", ".join(f"e.{c.strip()}" for c in COLUMNS.split(",")) +
        " FROM {events} e JOIN {tracking} t ON t.application_name = %s"
        " AND t.notification_id = e.notification_id"
        " WHERE e.notification_id > %s {only} ORDER BY e.notification_id"
    ).format(events=sql.Identifier(f"{store}_events"), tracking=tracking,
             only=sql.SQL("AND e.notification_id = ANY(%s)") if only is not None else sql.SQL(""))
    params = (store, rows_after, list(only)) if only is not None else (store, rows_after)
    cursor.execute(query, params)
    for row in cursor:
        yield tuple(row.values()) if isinstance(row, dict) else tuple(row)


def _as_delivered(event: Published) -> tuple[Published, dict]:
    """The stored event with the relay's envelope as the consumer has it once read off
    the queue (`read_event`): ids as UUIDs, instants as datetimes. Made straight from the
    stored event, without the JSON in between and without validating again what was
    validated when it was stored: those are most of the cost of a replay. The rebuild is
    compared row for row with the live model, which reads every message the long way."""
    return event, envelope_of(event.source, event.position, event.domain_event)


def _apply_stream(db_cursor, subscriber: Subscriber, schema: str, in_schema,
                  delivered: Iterable[tuple[Published, dict]],
                  progress: Callable[[int], None] | None, batch_size: int = CHUNK) -> int:
    """Apply (event, envelope) pairs in batches inside the rebuild's schema, recording
    each event's (source, position) in the rebuild's own tracking table; returns how
    many."""
    db_cursor.execute(in_schema)
    tracking = sql.Identifier(schema, f"{subscriber.consumer}_tracking")
    count, batch = 0, []

    def flush() -> None:
        subscriber.apply(db_cursor, [(e.source, envelope) for e, envelope in batch])
        positions: dict[str, list[int]] = {}
        for e, _ in batch:
            positions.setdefault(e.source, []).append(e.position)
        # One array of positions per store: far cheaper to send than a row per event.
        for source, applied in positions.items():
            db_cursor.execute(sql.SQL("INSERT INTO {} (application_name, notification_id)"
                                      " SELECT %s, unnest(%s::bigint[])").format(tracking),
                              (source, applied))
        if progress:
            progress(len(batch))

    for pair in delivered:
        batch.append(pair)
        if len(batch) >= batch_size:
            flush()
            count += len(batch)
            batch = []
    if batch:
        flush()
        count += len(batch)
    return count


@contextmanager
def _collector_paused() -> Iterator[Callable[[], None]]:
    """Python's cycle collector paused while events are replayed, run by hand over the
    youngest objects between chunks: a replay makes millions of short-lived objects, all
    freed as they are let go, and with thousands of events held at once the collector's
    own passes over them would cost about as much as the replay itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield lambda: gc.collect(0)  # what the last chunk left: its cycles, if any
    finally:
        if enabled:
            gc.enable()


def _replay_bulk(reader, writer, subscriber: Subscriber, stores: Sequence[type[CaseStore]],
                 schema: str, in_schema, progress: Callable[[int], None] | None) -> int:
    """Every event the live model applied, a chunk per transaction: one connection
    streams the logs (a server-side cursor each, rows as plain tuples), the other writes
    the chunk's rows and the positions it applied."""
    live_tracking = sql.Identifier("public", f"{subscriber.consumer}_tracking")
    # Binary rows: the stored states come as they are, not as hex text twice their size.
    cursors = [reader.cursor(name=f"replay_{store.name}", row_factory=tuple_row, binary=True)
               for store in stores]
    for cursor in cursors:
        cursor.itersize = CHUNK
    streams = [published(store, _applied(cursor, store.name, live_tracking))
               for store, cursor in zip(stores, cursors, strict=True)]
    merged = in_time_order(streams)
    total = 0
    with _collector_paused() as collect:
        while chunk := [_as_delivered(e) for _, e in zip(range(CHUNK), merged, strict=False)]:
            with writer.transaction(), writer.cursor() as cursor:
                total += _apply_stream(cursor, subscriber, schema, in_schema, chunk, progress)
            del chunk
            collect()
    return total


def existing_stores(db: Database, stores: Sequence[type[CaseStore]]) -> list[type[CaseStore]]:
    """The stores whose tables exist (a service that never ran has none)."""
    with db.transaction() as cursor:
        return [store for store in stores
                if cursor.execute("SELECT to_regclass(%s) AS t", (f"{store.name}_events",))
                .fetchone()["t"] is not None]


def rebuild_subscriber(db: Database, subscriber: Subscriber, stores: Sequence[type[CaseStore]],
                       *, swap: bool, progress: Callable[[int], None] | None = None) -> Outcome:
    """Replay every public event of the `stores` the live model applied, beside it, in
    time order; then, with the live model paused, the ones it applied meanwhile;
    compare; swap."""
    schema, in_schema, indexes = _fresh_schema(db, subscriber.name, subscriber.ddl)
    live_tracking = sql.Identifier("public", f"{subscriber.consumer}_tracking")
    stores = existing_stores(db, stores)
    # The bulk, while the live model goes on.
    with db.pool.connection() as reader, reader.transaction(), \
            db.pool.connection() as writer:
        total = _replay_bulk(reader, writer, subscriber, stores, schema, in_schema, progress)
    _make_indexes(db, in_schema, indexes)
    with db.transaction() as cursor:
        # Pause the live model: its next tracking row waits for this transaction.
        cursor.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(live_tracking))
        cursor.execute(sql.SQL(
            "SELECT t.application_name AS store, array_agg(t.notification_id) AS positions"
            " FROM {live} t WHERE NOT EXISTS (SELECT 1 FROM {mine} r"
            " WHERE r.application_name = t.application_name"
            " AND r.notification_id = t.notification_id) GROUP BY 1"
        ).format(live=live_tracking,
                 mine=sql.Identifier(schema, f"{subscriber.consumer}_tracking")))
        missing = {row["store"]: row["positions"] for row in cursor.fetchall()}
        if missing:
            by_name = {store.name: store for store in stores}
            rows = {by_name[name]: list(_applied(cursor, name, live_tracking, only=positions))
                    for name, positions in missing.items() if name in by_name}
            late = [_as_delivered(e) for e in
                    in_time_order(published(store, r) for store, r in rows.items())]
            total += _apply_stream(cursor, subscriber, schema, in_schema, late, progress)
        cursor.execute("SET LOCAL search_path TO public")
        tables = tables_of(subscriber)
        differences = _compare(cursor, schema, tables)
        if swap:
            _swap(cursor, schema, tables)
        cursor.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(live_tracking))
        position = cursor.fetchone()["n"]
        cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return Outcome(events=total, position=position, differences=differences)
