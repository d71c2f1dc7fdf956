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


# -- what processes and the database have done, from /proc and pg_stat_database ----------

# A backend publishes its transaction counts at most once a second while busy; one that
# falls idle within that second keeps them until its next transaction or until it has been
# idle for 10 s (PostgreSQL's PGSTAT_IDLE_INTERVAL). Waiting this long before reading
# pg_stat_database sees every backend's counts, whichever way it went quiet.
STATS_SETTLE = 11.0


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces):
    [0] state, [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes(prefix: str) -> dict[int, tuple[list[str], str]]:
    """Every process whose command name starts with `prefix`: its stat fields and its
    command line (where PostgreSQL shows a backend's user and database)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith(prefix):
                continue
            found[int(entry.name)] = (_stat(entry.name),
                                      (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError):
            continue  # gone between the listing and the read
    return found


def postgres_cpu(dbname: str) -> dict[str, float]:
    """CPU seconds used so far by the PostgreSQL server on this machine.

    "server": every postgres process alive now, plus what the postmaster has reaped from
    children that exited (cutime + cstime), so backends that came and went between two
    samples still count; it includes the work of every database on the server.
    "database": only the live backends connected to `dbname`; one that exits between two
    samples takes its time with it (the services' pools keep theirs open, so that is rare)."""
    ticks = os.sysconf("SC_CLK_TCK")
    processes = _processes("postgres")
    server = database = 0
    for fields, command in processes.values():
        own = int(fields[11]) + int(fields[12])
        server += own
        if int(fields[1]) not in processes:  # the postmaster: its children's are its own
            server += int(fields[13]) + int(fields[14])
        if f" {dbname} " in f"{command} ":
            database += own
    return {"server": server / ticks, "database": database / ticks}


def broker_cpu() -> float:
    """CPU seconds used so far by RabbitMQ's Erlang VM (every beam.smp on this machine:
    the one node serves every virtual host on it)."""
    processes = _processes("beam.smp")
    return sum(int(f[11]) + int(f[12]) for f, _ in processes.values()) / os.sysconf("SC_CLK_TCK")


def transactions(conn: psycopg.Connection, dbname: str) -> int:
    """Committed and rolled-back transactions of `dbname` as the statistics have them now.
    `conn` is an autocommit connection to another database (so the read itself is not
    counted), held for the whole benchmark: the machine's 100 connections are shared, and
    a fresh one may be refused at the moment of a reading."""
    conn.execute("SELECT pg_stat_clear_snapshot()")  # never a snapshot of an earlier read
    row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                       "WHERE datname = %s", (dbname,)).fetchone()
    return int(row[0]) if row else 0


def flush_statistics(conn: psycopg.Connection) -> None:
    """Make this connection's backend publish its counts at its next idle moment
    (PostgreSQL 15 and later); other backends are not affected."""
    if conn.info.server_version >= 150000:
        conn.execute("SELECT pg_stat_force_next_flush()")


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
