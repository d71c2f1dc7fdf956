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

`read_models()` names them all, for `ourvoice projections rebuild` and `status`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from marshmallow import fields
from psycopg import sql

from shared.db import Database
from shared.events import DATA_SCHEMAS, envelope_of
from shared.logs import COLUMNS, Published, StoreLog, in_time_order, published, store_classes
from shared.store import CaseStore, Projection, Subscriber

BATCH = 1000


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
        batch = store.recorder.select_notifications(start=position, limit=BATCH, stop=stop,
                                                    inclusive_of_start=False)
        if not batch:
            return position, count
        handle(cursor, batch)
        position, count = batch[-1].id, count + len(batch)
        if progress:
            progress(len(batch))


def rebuild(db: Database, store: CaseStore, projection: Projection, *, swap: bool,
            progress: Callable[[int], None] | None = None) -> Outcome:
    schema, in_schema = _fresh_schema(db, projection.name, projection.ddl)
    follower = f"projection:{projection.name}"
    # The bulk of the history, in batches, while the live projection goes on; never past
    # where the live one is, so the two can be compared at the same position.
    with db.transaction() as cursor:
        cursor.execute("SELECT position FROM ourvoice_followers WHERE name = %s", (follower,))
        row = cursor.fetchone()
    live_at_start = row["position"] if row else 0
    position, total = 0, 0
    while position < live_at_start:
        with db.transaction() as cursor:
            cursor.execute(in_schema)
            end, count = _replay(cursor, store, projection, position,
                                 min(position + BATCH * 10, live_at_start), progress)
        if count == 0:
            break
        position, total = end, total + count
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


def _fresh_schema(db: Database, name: str, ddl: Sequence[str]) -> tuple[str, sql.Composed]:
    schema = "rebuild_" + re.sub(r"\W", "_", name)
    in_schema = sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema))
    with db.transaction() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cursor.execute(in_schema)
        for statement in ddl:
            cursor.execute(statement)
    return schema, in_schema


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


def _instants(schema) -> tuple[str, ...]:
    return tuple(name for name, field in schema().fields.items()
                 if isinstance(field, fields.DateTime))


_INSTANTS = {name: _instants(schema) for name, schema in DATA_SCHEMAS.items()}


def _as_delivered(event: Published) -> tuple[str, dict]:
    """The relay's envelope as the consumer has it once read off the queue (`read_event`):
    ids as UUIDs, instants as datetimes. Made straight from the stored event, without the
    strings in between and without validating again what was just made: those are most of
    the cost of a replay. The rebuild is compared row for row with the live model, which
    reads every message the long way."""
    envelope = envelope_of(event.source, event.position, event.domain_event)
    data = envelope["data"]
    for name in _INSTANTS[envelope["event_type"]]:
        if data.get(name) is not None:
            data[name] = datetime.fromisoformat(data[name])
    return event.source, envelope


def _apply_stream(db_cursor, subscriber: Subscriber, schema: str, in_schema, events,
                  progress: Callable[[int], None] | None, batch_size: int = BATCH) -> int:
    """Apply events in batches inside the rebuild's schema, recording each (source,
    position) in the rebuild's own tracking table; returns how many."""
    db_cursor.execute(in_schema)
    tracking = sql.Identifier(schema, f"{subscriber.consumer}_tracking")
    count, batch = 0, []

    def flush() -> None:
        subscriber.apply(db_cursor, [_as_delivered(e) for e in batch])
        with db_cursor.copy(sql.SQL("COPY {} (application_name, notification_id) FROM STDIN")
                            .format(tracking)) as copy:
            for e in batch:
                copy.write_row((e.source, e.position))
        if progress:
            progress(len(batch))

    for event in events:
        batch.append(event)
        if len(batch) >= batch_size:
            flush()
            count += len(batch)
            batch = []
    if batch:
        flush()
        count += len(batch)
    return count


def existing_stores(db: Database) -> list[str]:
    """The stores whose tables exist (a service that never ran has none)."""
    with db.transaction() as cursor:
        return [store for store in store_classes()
                if cursor.execute("SELECT to_regclass(%s) AS t", (f"{store}_events",))
                .fetchone()["t"] is not None]


def rebuild_subscriber(db: Database, subscriber: Subscriber, *, swap: bool,
                       progress: Callable[[int], None] | None = None) -> Outcome:
    """Replay every public event the live model applied, beside it, in time order;
    then, with the live model paused, the ones it applied meanwhile; compare; swap."""
    schema, in_schema = _fresh_schema(db, subscriber.name, subscriber.ddl)
    live_tracking = sql.Identifier("public", f"{subscriber.consumer}_tracking")
    stores = existing_stores(db)
    total = 0
    # The bulk, while the live model goes on: one reading connection streams the three
    # logs (a server-side cursor each), another writes.
    with db.pool.connection() as reader, reader.transaction(), \
            db.pool.connection() as writer:
        cursors = [reader.cursor(name=f"replay_{store}") for store in stores]
        for cursor in cursors:
            cursor.itersize = 5000
        streams = [published(store, _applied(cursor, store, live_tracking))
                   for store, cursor in zip(stores, cursors, strict=True)]
        merged = in_time_order(streams)
        while True:
            with writer.transaction(), writer.cursor() as cursor:
                chunk = [e for _, e in zip(range(BATCH * 20), merged, strict=False)]
                if not chunk:
                    break
                total += _apply_stream(cursor, subscriber, schema, in_schema, chunk, progress)
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
            rows = {store: list(_applied(cursor, store, live_tracking, only=positions))
                    for store, positions in missing.items() if store in stores}
            late = list(in_time_order(published(store, r) for store, r in rows.items()))
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


# -- every read model, for operators ----------------------------------------------------
def read_models() -> dict[str, tuple[str | None, Projection | Subscriber]]:
    """Name -> (store it follows, or None when fed by the broker; the model)."""
    from services.intake import views as intake_views
    from services.reporting.audit import STREAMS
    from services.reporting.counts import READ_MODEL as reports
    from shared.store import EventStore

    found: dict[str, tuple[str | None, Projection | Subscriber]] = {}
    for store, store_class in store_classes().items():
        module = __import__(store_class.__module__, fromlist=["Service"])
        for provider in vars(module.Service).values():
            if isinstance(provider, EventStore):
                for projection in provider.projections:
                    found[projection.name] = (store, projection)
        found[STREAMS[store].name] = (store, STREAMS[store])
    case_view = Subscriber(
        "intake.case_view", "intake", intake_views.DDL,
        lambda cursor, batch: [intake_views.apply(cursor, event) for _, event in batch])
    for subscriber in (case_view, reports):
        found[subscriber.name] = (None, subscriber)
    return dict(sorted(found.items()))


def status(db: Database) -> list[dict]:
    """Each read model's position and how far behind its events it is."""
    from shared.events import EVENT_TYPES

    public = r"\.(" + "|".join(EVENT_TYPES) + ")$"
    rows = []
    with db.transaction() as cursor:
        heads, published_counts = {}, {}
        for store in existing_stores(db):
            cursor.execute(sql.SQL("SELECT coalesce(max(notification_id), 0) AS head,"
                                   " count(*) FILTER (WHERE topic ~ %s) AS public FROM {}")
                           .format(sql.Identifier(f"{store}_events")), (public,))
            row = cursor.fetchone()
            heads[store], published_counts[store] = row["head"], row["public"]
        for name, (store, model) in read_models().items():
            if store is not None:
                cursor.execute("SELECT position FROM ourvoice_followers WHERE name = %s",
                               (f"projection:{name}",))
                found = cursor.fetchone()
                position = found["position"] if found else 0
                cursor.execute(sql.SQL("SELECT count(*) AS n FROM {} WHERE notification_id > %s")
                               .format(sql.Identifier(f"{store}_events")), (position,))
                rows.append({"name": name, "fed_by": f"{store} log", "position": position,
                             "head": heads[store], "behind": cursor.fetchone()["n"]})
            else:
                cursor.execute(sql.SQL("SELECT application_name AS store, count(*) AS n"
                                       " FROM {} GROUP BY 1")
                               .format(sql.Identifier(f"{model.consumer}_tracking")))
                applied = {r["store"]: r["n"] for r in cursor.fetchall()}
                rows.append({"name": name, "fed_by": "public events",
                             "position": sum(applied.get(s, 0) for s in heads),
                             "head": sum(published_counts.values()),
                             "behind": sum(max(published_counts[s] - applied.get(s, 0), 0)
                                           for s in heads),
                             "per_store": {s: {"applied": applied.get(s, 0),
                                               "published": published_counts[s]}
                                           for s in heads}})
    return rows


def rebuild_model(db: Database, name: str, *, swap: bool,
                  progress: Callable[[int], None] | None = None) -> Outcome:
    store_name, model = read_models()[name]
    if store_name is None:
        return rebuild_subscriber(db, model, swap=swap, progress=progress)
    return rebuild(db, StoreLog(db, store_name), model, swap=swap, progress=progress)


def expected_events(db: Database, name: str) -> int:
    """Roughly how many events a rebuild replays, for its progress bar."""
    for row in status(db):
        if row["name"] == name:
            return row["position"]
    return 0


# -- `ourvoice projections` -------------------------------------------------------------
def command(args) -> int:
    """`projections status` and `projections rebuild [NAME...|--all] [--check]`."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table
    from rich.text import Text

    class EventsPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} events/s" if speed else "… events/s")

    console = Console()
    db = Database(max_size=2)
    try:
        models = read_models()
        if args.action == "status":
            table = Table("read model", "fed by", "position", "of", "behind")
            for row in status(db):
                table.add_row(row["name"], row["fed_by"], f"{row['position']:,}",
                              f"{row['head']:,}", f"{row['behind']:,}")
            console.print(table)
            from shared.chain import relay_alarms

            with db.transaction() as cursor:
                alarms = relay_alarms(cursor)
            for store, notification_id, reason, since in alarms:
                console.print(f"relay {store}: STOPPED at notification {notification_id} since "
                              f"{since.isoformat(timespec='seconds')}: {reason}", style="red",
                              soft_wrap=True)
            return 1 if alarms else 0
        names = list(models) if args.all else args.names
        unknown = [n for n in names if n not in models]
        if unknown or not names:
            console.print(f"name read models to rebuild, or --all; known: {', '.join(models)}"
                          if not unknown else f"no such read model: {', '.join(unknown)}",
                          style="red")
            return 2
        failed = False
        for name in names:
            expected = expected_events(db, name)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          EventsPerSecond(), TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task(name, total=expected or None)
                started = time.monotonic()
                outcome = rebuild_model(db, name, swap=not args.check,
                                        progress=lambda n, task=task: bar.advance(task, n))
                bar.update(task, total=max(expected, outcome.events), completed=outcome.events)
            seconds = time.monotonic() - started
            differing = sum(outcome.differences.values())
            rate = outcome.events / seconds if seconds else 0.0
            verb = "compared with" if args.check else "swapped in for"
            tables = ", ".join(f"{t}: {n}" for t, n in outcome.differences.items() if n)
            console.print(f"{name}: {outcome.events:,} events replayed in {seconds:.1f} s "
                          f"({rate:,.0f} events/s), {verb} the live model; "
                          + (f"{differing} rows differed ({tables})" if differing
                             else "the same row for row"), soft_wrap=True)
            failed = failed or (args.check and differing > 0)
        return 1 if failed else 0
    finally:
        db.close()
