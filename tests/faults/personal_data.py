"""Everywhere a citizen's name, phone or email must never be in plain text: every table
of the system's database, every message published on the events exchange, every log
line, every report. Each search returns what it found, naming the place."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psycopg
from kombu import Queue
from psycopg import sql

from shared.topology import EVENTS
from tests.faults.citizens import found_in
from tests.system import System

Found = tuple[str, str]  # where, and what was there

TABLES = """
    SELECT c.oid, c.oid::regclass::text FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT LIKE 'pg\\_toast%'
    ORDER BY 2"""
COLUMNS = """
    SELECT attname, atttypid = 'bytea'::regtype FROM pg_attribute
    WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum"""


def as_text(value) -> str:
    """Bytes (event states, sealed contacts) read as UTF-8, as anyone dumping them would."""
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else value


def in_database(system: System) -> tuple[int, list[Found]]:
    """Every column of every table in every schema (TOAST is read through its table),
    each value as text; returns how many tables were read and what was found."""
    found: list[Found] = []
    with psycopg.connect(f"host=127.0.0.1 port={system.pg_port} user=postgres "
                         f"dbname={system.dbname}") as conn:
        tables = conn.execute(TABLES).fetchall()
        for oid, table in tables:
            columns = conn.execute(COLUMNS, (oid,)).fetchall()
            # Everything but bytes is cast to text in the database: every type can be.
            select = sql.SQL(", ").join(
                sql.Identifier(name) if binary else sql.SQL("{}::text").format(sql.Identifier(name))
                for name, binary in columns)
            for row in conn.execute(sql.SQL("SELECT {} FROM {}").format(select, sql.SQL(table))):
                for (name, _), value in zip(columns, row, strict=True):
                    found += found_in(f"table {table}, column {name}", as_text(value))
    return len(tables), found


class Tap:
    """A durable queue bound to the events exchange with `#`, declared before the first
    case: it keeps a copy of every message published, through the broker's restarts
    (the relays publish persistently)."""

    def __init__(self, system: System):
        self.system = system
        self.queue = Queue("faults.tap", exchange=EVENTS, routing_key="#", durable=True,
                           auto_delete=False)

    def open(self) -> None:
        with self.system.broker() as connection:
            self.queue(connection.default_channel).declare()

    def drain(self) -> list[bytes]:
        """Every message kept, taken off the queue."""
        bodies: list[bytes] = []
        with self.system.broker() as connection, connection.Consumer(
                self.queue, on_message=lambda message: bodies.append(message.body), no_ack=True,
                prefetch_count=1000):
            try:
                while True:
                    connection.drain_events(timeout=2)
            except TimeoutError:
                return bodies  # nothing more came


def in_messages(bodies: list[bytes]) -> list[Found]:
    return [hit for number, body in enumerate(bodies, 1)
            for hit in found_in("the events exchange", as_text(body), f"message {number}: ")]


def in_logs(paths: list[Path]) -> list[Found]:
    found = []
    for path in paths:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            found += found_in(f"log {path.parent.name}/{path.name}", line, f"line {number}: ")
    return found


def in_reports(system: System) -> list[Found]:
    """The summary and its CSV export as an auditor gets them: nothing hidden."""
    found = []
    auditor = system.principal("auditor")
    for path in ("/v1/reports/summary", "/v1/reports/summary.csv"):
        response = system.call("GET", "reporting", path, auditor)
        assert response.status_code == 200, response.text
        found += found_in(path, response.text)
    return found


def described(found: list[Found]) -> str:
    """How many were found in each place, with the first few of each."""
    lines = []
    for place, times in Counter(place for place, _ in found).most_common():
        lines.append(f"{place}: {times}")
        lines += [f"    {spot}" for where, spot in found if where == place][:3]
    return "\n".join(lines)
