"""Versioned migrations: each part of the schema (the kernel's tables, and each service's
own) is an ordered list of named steps, and `ourvoice_schema_migrations` records which of
them a database has taken.

The first migration of every part creates the part's tables as they are declared (the
DDL beside the code that uses them, which the rebuild of a read model also builds from).
Its statements are all `IF NOT EXISTS`, so a database made by v0.1.0, which has those
tables already, takes it as a no-op and records it. Each later migration brings an
existing database to what the declarations say now; the statement it runs is also in the
declared DDL, so a fresh database (or a read model rebuilt beside the live one) ends with
the same tables as a migrated one.

They run under the advisory lock services already take for DDL, so services, `ourvoice
setup` and `ourvoice migrate` started together never race on a step."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from shared.config import Postgres, ensure_database

FOLLOWERS_DDL = """
CREATE TABLE IF NOT EXISTS ourvoice_followers (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0
)"""

MIGRATION_LOCK = "SELECT pg_advisory_lock(hashtext('ourvoice.migrate'))"

VERSIONS_DDL = """CREATE TABLE IF NOT EXISTS ourvoice_schema_migrations (
    part text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (part, version)
)"""

# A step is a statement (text or psycopg.sql), or a function given the connection and the
# database's settings, for what a statement cannot say (a store's tables made by
# eventsourcing, a hash chain).
Step = Any


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    steps: Sequence[Step] = field(default=())


@dataclass(frozen=True)
class Part:
    """A part of the schema and its migrations, which must be numbered 1, 2, 3, … in
    order, each version once: a gap or a repeat is a mistake in the code, refused here."""

    name: str
    migrations: Sequence[Migration]

    def __post_init__(self):
        versions = [m.version for m in self.migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"the migrations of {self.name} must be numbered 1, 2, 3, … "
                             f"in order, not {versions}")


def kernel() -> Part:
    """The tables every service shares: followers' positions, principals, accounts."""
    from shared import access, accounts

    return Part("kernel", [Migration(1, "the schema of v0.1.0",
                                     (FOLLOWERS_DDL, *access.DDL, *accounts.DDL))])


def store_tables(store_class: type) -> Callable[[psycopg.Connection, Postgres], None]:
    """A step making a store's tables: eventsourcing's (made by its recorder as it opens)
    and the store's hash chain."""
    def make(conn: psycopg.Connection, pg: Postgres) -> None:
        from shared.chain import ensure_chain

        store_class(env=pg.eventsourcing_env()).close()
        ensure_chain(conn, store_class.name)

    make.__name__ = f"{store_class.name}_store_tables"
    return make


def service_part(name: str, service_class: type) -> Part:
    """A service's part, from what its class declares: the tables of its providers (a
    `ddl`, the `projections` of its store, the store itself), then its `migrations`
    attribute, the later steps, numbered from 2."""
    steps: list[Step] = []
    for provider in vars(service_class).values():
        if store_class := getattr(provider, "store_class", None):
            steps.append(store_tables(store_class))
        steps += getattr(provider, "ddl", ())
        steps += [d for projection in getattr(provider, "projections", ()) for d in projection.ddl]
    first = Migration(1, "the schema of v0.1.0", tuple(steps))
    return Part(name, [first, *getattr(service_class, "migrations", ())])


def bring_up_to_date(container, pg: Postgres) -> None:
    """What each of a service's providers runs as it starts (whichever nameko sets up
    first does the work; the others find it done): the kernel's part and the service's."""
    apply([kernel(), service_part(container.service_name, container.service_cls)], pg)


def _applied(conn: psycopg.Connection) -> dict[tuple[str, int], Any]:
    conn.execute(VERSIONS_DDL)
    rows = conn.execute("SELECT part, version, applied_at FROM ourvoice_schema_migrations")
    return {(part, version): at for part, version, at in rows}


def apply(parts: Iterable[Part], pg: Postgres | None = None) -> list[tuple[str, Migration]]:
    """Run every pending migration of these parts, in order, each in a transaction of its
    own with its record; return those it ran."""
    pg = pg or Postgres.from_env()
    ensure_database(pg)
    ran = []
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(MIGRATION_LOCK)
        applied = _applied(conn)
        for part in parts:
            for migration in part.migrations:
                if (part.name, migration.version) in applied:
                    continue
                with conn.transaction():
                    for step in migration.steps:
                        if callable(step):
                            step(conn, pg)
                        else:
                            conn.execute(step)
                    conn.execute("INSERT INTO ourvoice_schema_migrations (part, version, name)"
                                 " VALUES (%s, %s, %s)", (part.name, migration.version,
                                                          migration.name))
                ran.append((part.name, migration))
    return ran


def status(parts: Iterable[Part], pg: Postgres | None = None) -> list[tuple[str, Migration, Any]]:
    """Each migration of these parts with when it was applied (None: pending)."""
    pg = pg or Postgres.from_env()
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        applied = _applied(conn)
    return [(part.name, m, applied.get((part.name, m.version)))
            for part in parts for m in part.migrations]
