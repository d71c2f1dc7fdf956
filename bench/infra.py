"""Scratch databases and virtual hosts, and the timing and progress helpers every
benchmark shares.

A benchmark must never disturb a system running on the same broker and server, so each
one gets a database and a virtual host with a random name, removed however it ends."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from shared.config import Postgres

# The only host a benchmark talks to.
HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
AMQP_PORT = 5672


def postgres(dbname: str) -> Postgres:
    return Postgres(dbname=dbname, host=HOST, port=PG_PORT, user=PG_USER, password="")


def admin_connection() -> psycopg.Connection:
    return psycopg.connect(postgres("postgres").conninfo(), autocommit=True)


def drop_database(dbname: str) -> None:
    # FORCE: a pool left open by a failed benchmark must not keep the database alive.
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


@contextmanager
def scratch_database() -> Iterator[Postgres]:
    """A new, empty database, dropped on the way out."""
    pg = postgres(f"ourvoice_bench_{uuid.uuid4().hex[:10]}")
    with admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pg.dbname)))
    try:
        yield pg
    finally:
        drop_database(pg.dbname)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def scratch_vhost() -> Iterator[str]:
    """A new virtual host the guest user may use; yields its AMQP URI. Deleting the
    vhost deletes every exchange, queue and message the benchmark left in it."""
    vhost = f"ourvoice-bench-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{HOST}:{AMQP_PORT}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


class Progress:
    """A status line on stderr for a long phase. On a terminal it is rewritten in place;
    otherwise (CI logs) a line is printed every few seconds so logs stay short."""

    def __init__(self, label: str, *, every: float | None = None):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.every = every if every is not None else (0.25 if self.tty else 3.0)
        self.last = 0.0
        self.width = 0

    def update(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        line = f"  {self.label}: {text}"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self, text: str) -> None:
        line = f"  {self.label}: {text}"
        sys.stderr.write(("\r" + line.ljust(self.width) if self.tty else line) + "\n")
        sys.stderr.flush()
        self.width = 0


def phase(title: str) -> None:
    sys.stderr.write(f"\n== {title}\n")
    sys.stderr.flush()


@dataclass
class Run:
    """How many operations a timed loop completed, in how long, and each one's latency."""

    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def run_for(seconds: float, step: Callable[[], None], progress: Progress) -> Run:
    """Call `step` back to back until `seconds` have passed."""
    latencies: list[float] = []
    start = now = time.perf_counter()
    deadline = start + seconds
    while now < deadline:
        before = now
        step()
        now = time.perf_counter()
        latencies.append(now - before)
        progress.update(f"{now - start:4.1f}/{seconds:.0f} s, {len(latencies) / (now - start):,.0f}/s")
    progress.done(f"{len(latencies):,} in {now - start:.1f} s, {len(latencies) / (now - start):,.0f}/s")
    return Run(len(latencies), now - start, latencies)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: always a value that was actually observed."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def foreign_activity() -> Counter[str]:
    """Other Our Voice services and test runs on this machine, not started by us: with
    two cores they take CPU from the benchmark, and the report should say so."""
    found: Counter[str] = Counter()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone already, or not ours to read
        if parent == os.getpid():
            continue  # the services of our own end-to-end run
        command = b" ".join(argv).decode(errors="replace")
        if "-m services." in command:
            found["service processes"] += 1
        elif "pytest" in command and "timeout" not in argv[0].decode(errors="replace"):
            found["pytest processes"] += 1
    return found
