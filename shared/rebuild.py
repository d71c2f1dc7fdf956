"""Rebuilding a projection from its store's events, beside the live one, then swapping.

The new tables are built in a schema of their own while the services run. To finish, the
live follower's row is locked (so it pauses), the rebuild catches up to the same
position, and in one transaction the new tables replace the old and the position moves
with them. `compare` answers whether the two agree row for row at that position."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from psycopg import sql

from shared.db import Database
from shared.store import CaseStore, Projection

BATCH = 1000


def tables_of(projection: Projection) -> list[str]:
    return [m.group(1) for ddl in projection.ddl
            if (m := re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", ddl))]


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
    schema = "rebuild_" + re.sub(r"\W", "_", projection.name)
    follower = f"projection:{projection.name}"
    in_schema = sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema))
    with db.transaction() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cursor.execute(in_schema)
        for ddl in projection.ddl:
            cursor.execute(ddl)
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
        differences = {}
        for table in tables_of(projection):
            new, old = (sql.Identifier(schema, table), sql.Identifier("public", table))
            cursor.execute(sql.SQL(
                "SELECT (SELECT count(*) FROM (SELECT * FROM {new} EXCEPT ALL SELECT * FROM {old}) a)"
                " + (SELECT count(*) FROM (SELECT * FROM {old} EXCEPT ALL SELECT * FROM {new}) b)"
                " AS n").format(new=new, old=old))
            differences[table] = cursor.fetchone()["n"]
        if swap and position >= live:
            for table in tables_of(projection):
                cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
                    sql.Identifier("public", table)))
                cursor.execute(sql.SQL("ALTER TABLE {} SET SCHEMA public").format(
                    sql.Identifier(schema, table)))
            cursor.execute("UPDATE ourvoice_followers SET position = %s WHERE name = %s",
                           (position, follower))
        cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return Outcome(events=total, position=position, differences=differences)
