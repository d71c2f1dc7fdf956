"""End to end: the four services as processes, complaints over HTTP, and the moment each
case lands in routing's office queue (the first place an office can see it).

The path measured is: POST to intake, intake's append, intake's relay, the broker,
routing's consumer and its append, then routing's projection follower writing the row."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from bench.cases import COMMUNES
from bench.infra import (
    HOST,
    PG_USER,
    STATS_SETTLE,
    Progress,
    admin_connection,
    broker_cpu,
    cpu_seconds,
    percentile,
    phase,
    postgres_cpu,
    transactions,
)
from bench.report import RESULTS, Figure, Results
from shared.config import SERVICES
from tests.system import System, complaint

IDLE_SETTLE = STATS_SETTLE  # after start-up, before the idle cost is measured
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


@dataclass(frozen=True)
class Usage:
    """What the services, the database server and the broker had consumed at one moment,
    and the database's transaction count as its statistics had it then (see STATS_SETTLE
    for how late those can be)."""

    at: float
    cpu: dict[str, float]  # the four services, then "postgresql", "postgresql server", "rabbitmq"
    transactions: int

    @classmethod
    def now(cls, system: System, stats: psycopg.Connection) -> Usage:
        cpu = {s: cpu_seconds(system.processes[s].pid) for s in SERVICES}
        server = postgres_cpu(system.dbname)
        cpu["postgresql"] = server["database"]
        cpu["postgresql server"] = server["server"]
        cpu["rabbitmq"] = broker_cpu()
        return cls(time.perf_counter(), cpu, transactions(stats, system.dbname))

    def since(self, before: Usage) -> tuple[float, dict[str, float], int]:
        return (self.at - before.at, {s: self.cpu[s] - before.cpu[s] for s in self.cpu},
                self.transactions - before.transactions)


def idle_load(system: System, stats: psycopg.Connection, seconds: float, results: Results) -> None:
    """With no traffic at all, what the services' relays and projections cost by polling."""
    progress = Progress("idle")
    progress.update(f"measuring {seconds:.0f} s with no traffic", force=True)
    before = Usage.now(system, stats)
    time.sleep(seconds)
    elapsed, everything, transactions = Usage.now(system, stats).since(before)
    cpu = {s: everything[s] for s in SERVICES}
    progress.done(f"{transactions / elapsed:,.0f} transactions/s, "
                  f"{100 * sum(cpu.values()) / elapsed:.0f}% of a CPU")
    results.add("e2e.idle.transactions", "Database transactions/s with no traffic (idle services)",
                transactions / elapsed, "/s", baseline=results.find("pg.commits"))
    results.details["e2e.idle"] = {
        "seconds": round(elapsed, 2), "transactions_per_second": round(transactions / elapsed, 1),
        "cpu_percent": {s: round(100 * c / elapsed, 1) for s, c in everything.items()},
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


def wait_until_settled(system: System, progress: Progress) -> None:
    """Until reporting, the last to see every event, has taken all that were stored: only
    then has every service done the work of the cases routed."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if system.settled():
                return
        except psycopg.OperationalError:
            pass  # the machine's connections are shared: a refused reading is tried again
        progress.update("waiting for every service to take every event")
        time.sleep(0.2)


class Profile:
    """With OURVOICE_BENCH_PROFILE=<service>, py-spy samples that service's process (from
    outside, without pausing it) for as long as the full-speed load lasts; its stacks are
    written to bench/results/profile-<service>.txt and summed up in the results."""

    def __init__(self, system: System, seconds: float):
        self.service = os.environ.get("OURVOICE_BENCH_PROFILE", "")
        self.process: subprocess.Popen | None = None
        if not self.service:
            return
        if self.service not in SERVICES:
            raise ValueError(f"OURVOICE_BENCH_PROFILE={self.service}: not one of {', '.join(SERVICES)}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.output = RESULTS / f"profile-{self.service}.txt"
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--nonblocking", "--rate", "100",
             "--format", "raw", "--duration", str(max(1, round(seconds))), "--output", str(self.output),
             "--pid", str(system.processes[self.service].pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self, results: Results) -> None:
        if self.process is None:
            return
        _, errors = self.process.communicate(timeout=60)
        if self.process.returncode != 0 or not self.output.exists():
            results.failures.append(f"py-spy on {self.service}: exit {self.process.returncode}, "
                                    f"{errors.decode(errors='replace')[-500:]}")
            return
        summary = results.details[f"e2e.profile.{self.service}"] = summarise(self.output)
        innermost = summary["percent_innermost_by_package"]
        results.notes.append(
            f"py-spy sampled {self.service} 100 times a second during the full-speed load "
            f"({summary['samples']:,} samples of running threads; its own CPU shares the machine, "
            f"so this run's figures are a little lower). Innermost frames by package: "
            + ", ".join(f"{name} {pct}%" for name, pct in list(innermost.items())[:6])
            + f"; stacks in {self.output.relative_to(RESULTS.parents[1])}.")


def summarise(collapsed: Path, top: int = 15) -> dict[str, object]:
    """From py-spy's collapsed stacks ("frame;frame;... count"): the share of samples whose
    innermost frame is in each package (where the CPU itself goes), the share of samples
    with each package anywhere on the stack (what it causes, callees included), and the
    innermost functions that take the most."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[package(frames[-1])] += n
        for name in {package(f) for f in frames}:
            anywhere[name] += n
        functions[frames[-1]] += n

    def shares(counter: Counter[str]) -> dict[str, float]:
        return {k: round(100 * v / total, 1) for k, v in counter.most_common(top)}

    return {"samples": total, "percent_innermost_by_package": shares(own),
            "percent_on_stack_by_package": shares(anywhere),
            "percent_innermost_by_function": shares(functions)}


def package(frame: str) -> str:
    """The top-level package of a py-spy frame "function (path/to/module.py:line)"."""
    path = frame.rpartition(" (")[2].rstrip(")").rpartition(":")[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/lib/python3" in path:
        return "stdlib"
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] in ("services", "shared", "ourvoice") and len(parts) > 1:
        return "/".join(parts[:2]) if parts[0] == "services" else parts[0]
    return parts[0].removesuffix(".py") if parts else frame


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
        with admin_connection() as stats:
            time.sleep(IDLE_SETTLE)
            idle_load(system, stats, IDLE_SECONDS, results)
            first_cases(system, conninfo, results)
            for rate in rates:
                steady_load(system, conninfo, rate, steady_seconds, results)
            first = results.details["e2e.first_case"]
            results.add("e2e.first.post", "First POST /v1/cases after start-up", first["post_ms"], "ms",
                        baseline=results.find(f"e2e.{rates[0]:.0f}/s.post.p50"))
            cost = Progress("cost")
            cost.update(f"{STATS_SETTLE:.0f} s for the steady loads' counts to be published", force=True)
            time.sleep(STATS_SETTLE)
            before = Usage.now(system, stats)
            profile = Profile(system, full_seconds)
            full_speed(system, conninfo, threads, full_seconds, results)
            wait_until_settled(system, cost)
            after = Usage.now(system, stats)
            profile.finish(results)
            # The window's last transactions are published up to STATS_SETTLE late; what the
            # idle services ran while we waited for them is taken off again.
            cost.update(f"{STATS_SETTLE:.0f} s for the load's counts to be published", force=True)
            time.sleep(STATS_SETTLE)
            late = transactions(stats, system.dbname) - after.transactions
            waited = time.perf_counter() - after.at
            idle_rate = results.details["e2e.idle"]["transactions_per_second"]
            window, cpu, counted = after.since(before)
            xacts = counted + late - idle_rate * waited
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
    if not cases:
        return
    per_case = {s: 1000 * c / cases for s, c in cpu.items()}
    services = sum(per_case[s] for s in SERVICES)
    # The services poll even with no traffic; at a low case count that weighs on a case.
    idle = results.details["e2e.idle"]
    idle_cpu_ms = sum(idle["cpu_percent"][s] for s in SERVICES) / 100 * window * 1000 / cases
    idle_xacts = idle_rate * window / cases
    cost.done(f"{cases:,} cases in {window:.1f} s: {services:.1f} ms of CPU in the services, "
              f"{per_case['postgresql']:.1f} in PostgreSQL, {per_case['rabbitmq']:.1f} in RabbitMQ, "
              f"{xacts / cases:.1f} transactions per case")
    for service in SERVICES:
        results.add(f"e2e.cpu.{service}", f"CPU per case at full speed, {service}",
                    per_case[service], "ms")
    results.add("e2e.cpu.services", "CPU per case at full speed, the four services", services, "ms")
    results.add("e2e.cpu.postgresql", "CPU per case at full speed, PostgreSQL (the bench "
                "database's backends)", per_case["postgresql"], "ms",
                baseline=results.find("pg.commit.cpu"))
    results.add("e2e.cpu.postgresql.server", "CPU per case at full speed, PostgreSQL (whole server, "
                "every database)", per_case["postgresql server"], "ms",
                baseline=results.find("pg.commit.cpu"))
    results.add("e2e.cpu.rabbitmq", "CPU per case at full speed, RabbitMQ (beam.smp, every vhost)",
                per_case["rabbitmq"], "ms", baseline=results.find("amqp.batches.cpu"))
    results.add("e2e.transactions", "Database transactions per case at full speed", xacts / cases,
                "tx", baseline=results.find("pg.commit.transactions"))
    results.details["e2e.per_case"] = {
        "cases": cases, "window_seconds": round(window, 3),
        "cpu_ms": {s: round(ms, 3) for s, ms in per_case.items()},
        "database_transactions": round(xacts / cases, 2),
        "transactions": {"in_window": counted, "published_late": late,
                         "idle_while_waiting": round(idle_rate * waited, 1)},
        "at_the_idle_rate": {"services_cpu_ms": round(idle_cpu_ms, 3),
                             "database_transactions": round(idle_xacts, 2)},
    }
    results.notes.append(
        f"At full speed each case cost {xacts / cases:.1f} database transactions and "
        f"{services:.1f} ms of CPU in the services "
        f"({', '.join(f'{s} {per_case[s]:.1f}' for s in SERVICES)}), "
        f"{per_case['postgresql']:.1f} ms in PostgreSQL's backends of the bench's database "
        f"({per_case['postgresql server']:.1f} ms in the whole server) and "
        f"{per_case['rabbitmq']:.1f} ms in RabbitMQ, over the {window:.0f} s from the first "
        "submission until every service had taken every event; of these, polling at the idle "
        f"rate alone would be {idle_xacts:.1f} transactions and {idle_cpu_ms:.1f} ms a case. "
        "The server and broker figures "
        "include whatever else ran on them; a backend of the bench's database that closed "
        "within the window is not in its figure."
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.end_to_end`: this phase alone, after the raw baselines it is
    compared with (single-row commits and kombu publishing)."""
    import argparse

    from bench.broker import publish_baselines
    from bench.postgres import raw_commits

    parser = argparse.ArgumentParser(prog="python -m bench.end_to_end", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every duration (e.g. 0.2 for a quick check)")
    scale = parser.parse_args(argv).scale
    results = Results()
    raw_commits(results, 5 * scale)
    publish_baselines(results, 5 * scale)
    end_to_end(results, rates=(10, 50, 200), steady_seconds=10 * scale, threads=16,
               full_seconds=15 * scale)
    print(results.table())
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
