"""End to end: the four services as processes, complaints over HTTP, and the moment each
case lands in routing's office queue (the first place an office can see it).

The path measured is: POST to intake, intake's append, intake's relay, the broker,
routing's consumer and its append, then routing's projection follower writing the row."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
import requests

from bench.cases import COMMUNES
from bench.infra import HOST, PG_USER, Progress, percentile, phase
from bench.report import Figure, Results
from shared.config import SERVICES
from tests.system import System, complaint

IDLE_SETTLE = 2.0  # after start-up, before the idle cost is measured
IDLE_SECONDS = 5.0
WARM_UP = 5  # submissions after the first, before any latency is taken
ARRIVAL_POLL = 0.005  # how often the office queue is looked at while latencies are taken
DRAIN_TIMEOUT = 120.0  # the most we wait for a backlog to reach the office queue


class Client:
    """Submissions over HTTP with one keep-alive session per thread, as separate phones
    would have, cycling through communes so cases go to different offices."""

    def __init__(self, url: str):
        self.url = url
        self.local = threading.local()
        self.counter = itertools.count()
        self.lock = threading.Lock()
        self.refusals: Counter[str] = Counter()  # why submissions were not accepted

    def submit(self) -> str | None:
        """The new case's tracking code, or None if intake did not accept it."""
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        body = complaint(location={"commune": COMMUNES[next(self.counter) % len(COMMUNES)]})
        try:
            response = session.post(self.url, json=body, timeout=30)
        except requests.RequestException as error:
            self.refused(type(error).__name__)
            return None
        if response.status_code != 201:
            self.refused(f"HTTP {response.status_code}")
            return None
        return response.json()["tracking_code"]

    def refused(self, reason: str) -> None:
        with self.lock:
            self.refusals[reason] += 1


def describe(refusals: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in refusals.most_common()) or "none"


class Arrivals(threading.Thread):
    """Watches routing_office_queue for the tracking codes it was told to expect and notes
    when each first appears. Only pending codes are asked for, so each poll returns just
    the new rows however large the table grows."""

    def __init__(self, conninfo: str):
        super().__init__(daemon=True, name="arrivals")
        self.conninfo = conninfo
        self.lock = threading.Lock()
        self.pending: set[str] = set()
        self.seen: dict[str, float] = {}
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def expect(self, code: str) -> None:
        with self.lock:
            if code not in self.seen:
                self.pending.add(code)

    def waiting(self) -> int:
        with self.lock:
            return len(self.pending)

    def run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                while not self.stopping.is_set():
                    with self.lock:
                        pending = list(self.pending)
                    if pending:
                        rows = conn.execute(
                            "SELECT tracking_code FROM routing_office_queue "
                            "WHERE tracking_code = ANY(%s)", (pending,)).fetchall()
                        now = time.perf_counter()
                        with self.lock:
                            for (code,) in rows:
                                self.pending.discard(code)
                                self.seen[code] = now
                    time.sleep(ARRIVAL_POLL)
        except BaseException as error:  # surfaced by the caller, not lost in a thread
            self.error = error

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


@dataclass
class Steady:
    sent: dict[str, float] = field(default_factory=dict)  # tracking code -> before the POST
    post_seconds: list[float] = field(default_factory=list)
    rejected: int = 0


def steady_load(system: System, conninfo: str, rate: float, seconds: float, results: Results) -> None:
    client = Client(system.url("intake", "/v1/cases"))
    arrivals = Arrivals(conninfo)
    arrivals.start()
    state = Steady()
    lock = threading.Lock()

    def one() -> None:
        before = time.perf_counter()
        code = client.submit()
        after = time.perf_counter()
        with lock:
            state.post_seconds.append(after - before)
            if code is None:
                state.rejected += 1
                return
            state.sent[code] = before
        arrivals.expect(code)

    total = round(rate * seconds)
    progress = Progress(f"steady {rate:g}/s")
    # Open loop: a slow answer must not delay the next submission, or the load would
    # adapt to the system and hide its latency; hence a pool bigger than rate x latency.
    with ThreadPoolExecutor(max_workers=16) as pool:
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one)
            progress.update(f"{i + 1}/{total} sent, {len(arrivals.seen)} in the office queue")
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while arrivals.waiting() and time.monotonic() < deadline and arrivals.error is None:
        progress.update(f"{total}/{total} sent, {len(arrivals.seen)} in the office queue")
        time.sleep(0.05)
    arrivals.stop()
    if arrivals.error is not None:
        raise arrivals.error
    latencies = [(arrivals.seen[c] - t) * 1000 for c, t in state.sent.items() if c in arrivals.seen]
    lost = len(state.sent) - len(latencies)
    progress.done(f"{len(latencies)}/{total} cases reached the office queue")
    if state.rejected or lost:
        results.failures.append(f"steady load: {state.rejected} submissions refused "
                                f"({describe(client.refusals)}), "
                                f"{lost} accepted cases never reached the office queue")
    post_ms = [s * 1000 for s in state.post_seconds]
    at = f"{rate:.0f}/s"
    results.add(f"e2e.{at}.latency.p50", f"End-to-end latency p50 at {at} (POST to office queue)",
                percentile(latencies, 50), "ms", baseline=results.find("pg.commit.p50"))
    results.add(f"e2e.{at}.latency.p99", f"End-to-end latency p99 at {at} (POST to office queue)",
                percentile(latencies, 99), "ms", baseline=results.find("pg.commit.p99"))
    results.add(f"e2e.{at}.post.p50", f"POST /v1/cases latency p50 at {at}", percentile(post_ms, 50),
                "ms", baseline=results.find("pg.commit.p50"), tag=f"POST@{at}")
    results.details[f"e2e.steady.{at}"] = {
        "rate": rate, "seconds": seconds, "sent": total, "accepted": len(state.sent),
        "reached_office_queue": len(latencies),
        "latency_ms": {"p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
                       "p99": percentile(latencies, 99), "max": max(latencies, default=None)},
        "post_ms": {"p50": percentile(post_ms, 50), "p99": percentile(post_ms, 99)},
        "poll_interval_ms": ARRIVAL_POLL * 1000,
    }


def office_queue_rows(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM routing_office_queue").fetchone()[0]


def full_speed(system: System, conninfo: str, threads: int, seconds: float, results: Results) -> None:
    client = Client(system.url("intake", "/v1/cases"))
    accepted = [0] * threads
    refused = [0] * threads
    stopping = threading.Event()

    def worker(n: int) -> None:
        while not stopping.is_set():
            if client.submit() is None:
                refused[n] += 1
            else:
                accepted[n] += 1

    progress = Progress(f"full speed, {threads} clients")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        before = office_queue_rows(conn)
        workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        while (elapsed := time.perf_counter() - start) < seconds:
            time.sleep(0.25)
            progress.update(f"{elapsed:4.1f}/{seconds:.0f} s, {sum(accepted):,} accepted, "
                            f"{office_queue_rows(conn) - before:,} in the office queue")
        stopping.set()
        for w in workers:
            w.join(timeout=35)
        load_seconds = time.perf_counter() - start
        in_window = office_queue_rows(conn) - before
        # The backlog still on its way counts: the rate is what the whole pipeline
        # sustained, from the first submission until the last case was routed.
        target = before + sum(accepted)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while (rows := office_queue_rows(conn)) < target and time.monotonic() < deadline:
            progress.update(f"draining: {rows - before:,}/{sum(accepted):,} in the office queue")
            time.sleep(0.05)
        done = time.perf_counter() - start
    reached = rows - before
    progress.done(f"{sum(accepted):,} accepted in {load_seconds:.1f} s, {reached:,} routed "
                  f"after {done:.1f} s")
    if reached < sum(accepted) or sum(refused):
        results.failures.append(f"full speed: {sum(refused)} submissions refused "
                                f"({describe(client.refusals)}), "
                                f"{sum(accepted) - reached} accepted cases never reached the office queue")
    results.add("e2e.throughput", f"End-to-end cases/s, {threads} clients (submitted to office queue)",
                reached / done, "/s", baseline=results.find("pg.commits"))
    results.add("e2e.throughput.vs.publish", "End-to-end cases/s vs. raw kombu publish "
                "with confirm", reached / done, "/s", baseline=results.find("amqp.confirmed"))
    results.add("e2e.accepted", f"POST /v1/cases accepted/s, {threads} clients",
                sum(accepted) / load_seconds, "/s", baseline=results.find("pg.commits"))
    results.details["e2e.full_speed"] = {
        "threads": threads, "load_seconds": round(load_seconds, 3), "accepted": sum(accepted),
        "refused": sum(refused), "routed_during_load": in_window, "routed": reached,
        "seconds_until_all_routed": round(done, 3),
        "backlog_at_end_of_load": sum(accepted) - in_window,
    }


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of a process, in kB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                values[name] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """What the services and their database had consumed at one moment. PostgreSQL
    publishes its counters about once a second, so differences over a few seconds are
    approximate."""

    at: float
    cpu: dict[str, float]
    transactions: int

    @classmethod
    def now(cls, system: System, conn: psycopg.Connection) -> Usage:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (system.dbname,)).fetchone()
        return cls(time.perf_counter(), {s: cpu_seconds(system.processes[s].pid) for s in SERVICES},
                   int(row[0]) if row else 0)

    def since(self, before: Usage) -> tuple[float, dict[str, float], int]:
        return (self.at - before.at, {s: self.cpu[s] - before.cpu[s] for s in self.cpu},
                self.transactions - before.transactions)


def idle_load(system: System, conn: psycopg.Connection, seconds: float, results: Results) -> None:
    """With no traffic at all, what the services' relays and projections cost by polling."""
    progress = Progress("idle")
    progress.update(f"measuring {seconds:.0f} s with no traffic", force=True)
    before = Usage.now(system, conn)
    time.sleep(seconds)
    elapsed, cpu, transactions = Usage.now(system, conn).since(before)
    progress.done(f"{transactions / elapsed:,.0f} transactions/s, "
                  f"{100 * sum(cpu.values()) / elapsed:.0f}% of a CPU")
    results.add("e2e.idle.transactions", "Database transactions/s with no traffic (idle services)",
                transactions / elapsed, "/s", baseline=results.find("pg.commits"))
    results.details["e2e.idle"] = {
        "seconds": round(elapsed, 2), "transactions_per_second": round(transactions / elapsed, 1),
        "cpu_percent": {s: round(100 * c / elapsed, 1) for s, c in cpu.items()},
    }
    results.notes.append(
        f"With no traffic the four services ran {transactions / elapsed:,.0f} database "
        f"transactions/s and used {100 * sum(cpu.values()) / elapsed:.0f}% of one CPU "
        f"({', '.join(f'{s} {100 * c / elapsed:.0f}%' for s, c in cpu.items())})."
    )


def first_cases(system: System, conninfo: str, results: Results) -> None:
    """The first submission after start-up, alone, then a few more: whatever a service
    prepares lazily is paid by the first citizen, and must not pass for the steady
    latency of the load that follows."""
    progress = Progress("first case")
    client = Client(system.url("intake", "/v1/cases"))
    arrivals = Arrivals(conninfo)
    arrivals.start()
    try:
        sent: dict[str, float] = {}
        post_ms: list[float] = []
        for _ in range(1 + WARM_UP):
            before = time.perf_counter()
            code = client.submit()
            post_ms.append((time.perf_counter() - before) * 1000)
            if code is None:
                raise RuntimeError(f"intake refused a submission ({describe(client.refusals)})")
            sent[code] = before
            arrivals.expect(code)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while arrivals.waiting() and time.monotonic() < deadline and arrivals.error is None:
            time.sleep(0.01)
    finally:
        arrivals.stop()
    if arrivals.error is not None:
        raise arrivals.error
    first = next(iter(sent))
    if first not in arrivals.seen:
        raise RuntimeError("the first case never reached the office queue")
    cold = (arrivals.seen[first] - sent[first]) * 1000
    progress.done(f"POST {post_ms[0]:.0f} ms, in the office queue after {cold:.0f} ms")
    results.details["e2e.first_case"] = {"post_ms": round(post_ms[0], 2), "latency_ms": round(cold, 2),
                                         "warm_up_post_ms": [round(ms, 2) for ms in post_ms[1:]]}


def end_to_end(results: Results, *, rates: tuple[float, ...], steady_seconds: float, threads: int,
               full_seconds: float) -> None:
    phase("End to end: the four services as processes")
    # Every client here is one address, 127.0.0.1; intake's per-address flood guard
    # would measure itself instead of the pipeline.
    system = System("bench", extra_env={"OURVOICE_SUBMISSIONS_PER_MINUTE": "0"})
    progress = Progress("system")
    try:
        progress.update("creating database and vhost", force=True)
        system.create()
        progress.update("starting the four services", force=True)
        system.start_all()
        progress.done("four services healthy")
        idle = {s: memory_kb(system.processes[s].pid) for s in SERVICES}
        conninfo = f"host={HOST} user={PG_USER} dbname={system.dbname}"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            time.sleep(IDLE_SETTLE)
            idle_load(system, conn, IDLE_SECONDS, results)
            first_cases(system, conninfo, results)
            for rate in rates:
                steady_load(system, conninfo, rate, steady_seconds, results)
            first = results.details["e2e.first_case"]
            results.add("e2e.first.post", "First POST /v1/cases after start-up", first["post_ms"], "ms",
                        baseline=results.find(f"e2e.{rates[0]:.0f}/s.post.p50"))
            before = Usage.now(system, conn)
            full_speed(system, conninfo, threads, full_seconds, results)
            time.sleep(1)  # PostgreSQL publishes its counters about once a second
            _, cpu, transactions = Usage.now(system, conn).since(before)
        loaded = {s: memory_kb(system.processes[s].pid) for s in SERVICES}
    finally:
        system.destroy()
    for service in SERVICES:
        # The idle size is only the peak's baseline, not a row of its own.
        idle_mb = Figure(f"rss.{service}.idle", f"{service} RSS once started",
                         idle[service]["VmRSS"] / 1024, "MB", tag="idle")
        results.add(f"rss.{service}.peak", f"{service} peak RSS (VmHWM) after the load",
                    loaded[service]["VmHWM"] / 1024, "MB", baseline=idle_mb)
    results.details["rss_kb"] = {"after_start": idle, "after_load": loaded}
    cases = results.details.get("e2e.full_speed", {}).get("routed", 0)
    if cases:
        per_case = {s: round(1000 * c / cases, 2) for s, c in cpu.items()}
        results.details["e2e.per_case"] = {"database_transactions": round(transactions / cases, 1),
                                           "cpu_ms": per_case}
        results.notes.append(
            f"At full speed each case cost about {transactions / cases:.0f} database transactions "
            f"and {sum(per_case.values()):.1f} ms of CPU in the services "
            f"({', '.join(f'{s} {ms:.1f}' for s, ms in per_case.items())})."
        )
