"""A connection pool for read models, tracking and follower positions.

Events themselves go through eventsourcing's own pool; this one serves the rows we
update in place (read models) and the bookkeeping that must commit with them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import psycopg
from eventsourcing import persistence
from nameko.extensions import DependencyProvider
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from shared import migrations
from shared.config import Postgres, ensure_database
from shared.migrations import FOLLOWERS_DDL, MIGRATION_LOCK  # noqa: F401  (also taken from here)

# Errors after which the same work can simply be tried again once the database is back
# (psycopg's own, and eventsourcing's wrappers of them; a pool timeout is one of them).
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError,
             persistence.OperationalError, persistence.InterfaceError)


def transient(error: BaseException) -> bool:
    """Whether the same work may simply be tried again: an outage (TRANSIENT), or a
    prepared statement the server says it does not have. eventsourcing appends in a
    pipeline, and psycopg can count a statement as prepared when the pipeline that was
    to prepare it failed (after a database restart, a redelivered event's conflict does
    that); such a failure says nothing about the event, and a later try goes through."""
    if isinstance(error, TRANSIENT):
        return True
    stale = psycopg.errors.InvalidSqlStatementName
    return isinstance(error, stale) or (isinstance(error, persistence.ProgrammingError)
                                        and isinstance(error.__cause__, stale))


def tracking_ddl(consumer: str) -> str:
    """The same layout as eventsourcing's multi-row tracking table, so a consumer that
    records events and one that writes read models share one table per service."""
    return (
        f"CREATE TABLE IF NOT EXISTS {consumer}_tracking ("
        "application_name text, notification_id bigint, "
        "PRIMARY KEY (application_name, notification_id))"
    )


@contextmanager
def migration_lock(pg: Postgres) -> Iterator[None]:
    """Held while creating tables: services that start together would otherwise race on
    the same DDL (PostgreSQL answers "tuple concurrently updated")."""
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(MIGRATION_LOCK)
        yield


class Database:
    def __init__(self, pg: Postgres | None = None, *, max_size: int = 4):
        self.pg = pg or Postgres.from_env()
        ensure_database(self.pg)
        self.pool = ConnectionPool(
            self.pg.conninfo(),
            min_size=1,
            max_size=max_size,
            kwargs={"row_factory": dict_row},
            open=True,
        )

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor]:
        """A transaction on a pooled connection. After a database restart the connections
        the pool kept are found broken only when used: one that fails its BEGIN, before
        anything of the caller's ran, is dropped with any other the pool holds broken,
        and the transaction starts again on a sound one."""
        for attempt in (1, 2):
            with ExitStack() as held:
                conn = held.enter_context(self.pool.connection())
                try:
                    held.enter_context(conn.transaction())
                except psycopg.OperationalError:
                    if attempt == 2:
                        raise
                    broken = True
                else:
                    broken = False
                    yield held.enter_context(conn.cursor())
            if not broken:
                return
            self.pool.check()  # the broken one went back and was thrown away

    def migrate(self, *statements: str) -> None:
        """Run DDL; a lock keeps services that start together from racing on it."""
        with migration_lock(self.pg), self.transaction() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def has_tracking(self, consumer: str, tracking) -> bool:
        with self.pool.connection() as conn:
            found = conn.execute(
                f"SELECT 1 FROM {consumer}_tracking "
                "WHERE application_name = %s AND notification_id = %s",
                (tracking.application_name, tracking.notification_id),
            ).fetchone()
        return found is not None

    def tracked_already(self, consumer: str, trackings: Sequence) -> set[tuple[str, int]]:
        """Which (source, position) of `trackings` `consumer` has processed, in one query."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT application_name, notification_id FROM {consumer}_tracking "
                "WHERE (application_name, notification_id) IN "
                "(SELECT * FROM unnest(%s::text[], %s::bigint[]))",
                ([t.application_name for t in trackings], [t.notification_id for t in trackings]),
            ).fetchall()
        return {(row["application_name"], row["notification_id"]) for row in rows}

    @contextmanager
    def tracked(self, consumer: str, trackings: Sequence) -> Iterator[
            tuple[psycopg.Cursor, set[tuple[str, int]]]]:
        """A transaction that records every (source, position) of `trackings` as processed
        by `consumer`, in one statement, along with whatever the caller writes; and which
        of them are new. One recorded already (an earlier delivery, or another instance
        at this moment: the insert waits for that one's transaction) is left alone, so
        the caller applies only the new ones and a redelivery changes nothing. The rows
        go in one order everywhere, so that two instances never deadlock on them."""
        keys = sorted({(t.application_name, t.notification_id) for t in trackings})
        with self.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {consumer}_tracking (application_name, notification_id) "
                "SELECT * FROM unnest(%s::text[], %s::bigint[]) AS t (source, position) "
                "ORDER BY source, position "
                "ON CONFLICT DO NOTHING RETURNING application_name, notification_id",
                ([source for source, _ in keys], [position for _, position in keys]),
            )
            new = {(row["application_name"], row["notification_id"]) for row in cursor}
            yield cursor, new

    def ping(self) -> None:
        with self.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        self.pool.close()


class DatabaseProvider(DependencyProvider):
    """One pool per service process, with the tables its read models need: `ddl` of
    its own and those of its `subscribers` (the read models the broker feeds, each a
    `shared.store.Subscriber`), which are declared here so those who operate the
    service find them."""

    def __init__(self, *ddl: str, subscribers: Sequence = ()):
        self.subscribers = tuple(subscribers)
        self.ddl = (*ddl, *(d for subscriber in self.subscribers for d in subscriber.ddl))
        self.db: Database | None = None

    def setup(self) -> None:
        self.db = Database()
        # A service brings its own part of the schema (and the kernel's) up to date as it
        # starts, as `ourvoice migrate` would: see shared/migrations.py.
        migrations.bring_up_to_date(self.container, self.db.pg)

    def stop(self) -> None:
        if self.db is not None:
            self.db.close()

    def get_dependency(self, worker_ctx) -> Database:
        return self.db
