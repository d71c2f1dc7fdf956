"""What watching the system costs: the end-to-end full-speed load of bench/end_to_end.py
with the services as operators run them (JSON log lines, metrics counted) against the
same load with plain text logs and metrics off, and the latency of `GET /health/ready`
on each service, idle and under load.

One system (database, virtual host) serves every run; between runs its four services are
stopped and started again with the other settings, turn about (bare, watched, bare,
watched, ...) so that the machine's noise and the store's growth weigh on both alike.
Each run warms up with the end-to-end phase's first cases and ends once every service
has taken every event, so none inherits another's backlog.

The probes are sequential, each `/health/ready` beside a `/health/live` of the same
service (the same HTTP path, asking nothing of anyone: the baseline), and beside them
the raw round trips a readiness probe makes: `SELECT 1` on a kept PostgreSQL connection
and a `basic.qos` on a kept broker channel."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import kombu
import psycopg
import requests

from bench.end_to_end import Client, Usage, first_cases, full_speed, wait_until_settled
from bench.infra import HOST, PG_USER, Progress, admin_connection, percentile, phase
from bench.report import Figure, Results
from shared.config import SERVICES
from tests.system import System


@dataclass(frozen=True)
class Setup:
    name: str
    tag: str
    env: dict[str, str]


BARE = Setup("text logs, metrics off", "bare", {"OURVOICE_LOG_FORMAT": "text",
                                                  "OURVOICE_METRICS": "off"})
WATCHED = Setup("JSON logs, metrics on", "watched", {"OURVOICE_LOG_FORMAT": "json",
                                                     "OURVOICE_METRICS": "on"})


def restart(system: System, setup: Setup) -> None:
    system.stop_all()
    system.env.update(setup.env)
    system.start_all()
    # The switch itself, seen from outside: off answers 404, on the exposition.
    status = requests.get(system.url("intake", "/metrics"), timeout=10).status_code
    if status != (200 if setup is WATCHED else 404):
        raise RuntimeError(f"{setup.name}: GET /metrics answered {status}")


@dataclass(frozen=True)
class Run:
    setup: Setup
    cases_per_second: float
    services_cpu_ms: float  # CPU of the four services per case routed


def one_run(system: System, setup: Setup, conninfo: str, stats: psycopg.Connection,
            threads: int, seconds: float, results: Results) -> Run:
    restart(system, setup)
    # A scratch table: the end-to-end phase's figures of this run are read from it, and
    # must not land among (or overwrite) those of the phase itself.
    scratch = Results()
    first_cases(system, conninfo, scratch)
    before = Usage.now(system, stats)
    full_speed(system, conninfo, threads, seconds, scratch)
    wait_until_settled(system, Progress(setup.name))
    _, cpu, _ = Usage.now(system, stats).since(before)
    results.failures += [f"{setup.name}: {failure}" for failure in scratch.failures]
    routed = scratch.details["e2e.full_speed"]["routed"]
    run = Run(setup, scratch.find("e2e.throughput").value,
              1000 * sum(cpu[s] for s in SERVICES) / max(routed, 1))
    print(f"  {setup.name}: {run.cases_per_second:.1f} cases/s, "
          f"{run.services_cpu_ms:.1f} ms of the services' CPU a case", file=sys.stderr)
    return run


# -- probes -----------------------------------------------------------------------------
def timed_ms(call) -> float:
    before = time.perf_counter()
    call()
    return (time.perf_counter() - before) * 1000


def probe(system: System, service: str, count: int) -> tuple[list[float], list[float]]:
    """`count` readiness probes, each after a liveness probe, on one kept connection;
    their latencies in ms."""
    session = requests.Session()
    live, ready, refused = [], [], []

    def get(path: str) -> None:
        answer = session.get(system.url(service, path), timeout=10)
        if answer.status_code != 200:
            refused.append(f"{path} {answer.status_code}")

    for _ in range(count):
        live.append(timed_ms(lambda: get("/health/live")))
        ready.append(timed_ms(lambda: get("/health/ready")))
    if refused:
        raise RuntimeError(f"{service}: {len(refused)} probes failed, e.g. {refused[0]}")
    return live, ready


def raw_round_trips(system: System, conninfo: str, count: int) -> list[float]:
    """What a readiness probe asks, without the service: `SELECT 1` on a kept connection,
    then a basic.qos on a kept channel, in ms."""
    with psycopg.connect(conninfo, autocommit=True) as db, \
            kombu.Connection(system.env["AMQP_URI"]) as broker:
        channel = broker.default_channel

        def both() -> None:
            db.execute("SELECT 1").fetchone()
            channel.basic_qos(0, 0, False)

        return [timed_ms(both) for _ in range(count)]


@contextmanager
def load(system: System, threads: int) -> Iterator[None]:
    """Submissions at full speed from `threads` clients while the block runs."""
    client = Client(system.url("intake", "/v1/cases"))
    stopping = threading.Event()

    def submit() -> None:
        while not stopping.is_set():
            client.submit()

    workers = [threading.Thread(target=submit, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(2)  # until the services' queues and pools are busy
        yield
    finally:
        stopping.set()
        for worker in workers:
            worker.join(timeout=35)


def probes(system: System, conninfo: str, count: int, condition: str,
           results: Results) -> None:
    """The services probed at once, each by a client of its own (one probe at a time on
    each: a service never sees two of them together), beside the raw round trips."""
    progress = Progress(f"probes, {condition}")
    progress.update(f"{count} on each service", force=True)
    measured: dict[str, tuple[list[float], list[float]]] = {}
    errors: list[BaseException] = []

    def on(service: str) -> None:
        try:
            measured[service] = probe(system, service, count)
        except BaseException as error:  # surfaced below, not lost in a thread
            errors.append(error)

    clients = [threading.Thread(target=on, args=(s,), daemon=True) for s in SERVICES]
    for client in clients:
        client.start()
    raw = raw_round_trips(system, conninfo, count)
    for client in clients:
        client.join()
    if errors:
        raise errors[0]
    progress.done(f"{count} probes of each service")
    key = f"obs.{condition.replace(' ', '_')}"
    raw_p50 = results.add(f"{key}.raw.p50", f"Raw SELECT 1 + broker basic.qos p50, {condition}",
                          percentile(raw, 50), "ms", tag=f"RAW50 {condition}")
    results.add(f"{key}.raw.p99", f"Raw SELECT 1 + broker basic.qos p99, {condition}",
                percentile(raw, 99), "ms", tag=f"RAW99 {condition}", baseline=raw_p50)
    for service in SERVICES:
        live, ready = measured[service]
        for q in (50, 99):
            live_figure = Figure(f"{key}.{service}.live.p{q}", f"{service} /health/live p{q}",
                                 percentile(live, q), "ms", tag=f"live p{q}")
            results.add(f"{key}.{service}.ready.p{q}", f"{service} GET /health/ready p{q}, "
                        f"{condition}", percentile(ready, q), "ms", baseline=live_figure)
    results.details[key] = {
        "probes_per_service": count,
        "raw_ms": {"p50": percentile(raw, 50), "p99": percentile(raw, 99)},
        **{service: {"live_ms": {"p50": percentile(live, 50), "p99": percentile(live, 99)},
                     "ready_ms": {"p50": percentile(ready, 50), "p99": percentile(ready, 99),
                                  "max": max(ready)}}
           for service, (live, ready) in measured.items()},
    }


# -- the phase ----------------------------------------------------------------------------
def observability(results: Results, *, seconds: float, rounds: int = 2, threads: int = 16,
                  probes_per_service: int = 300) -> None:
    phase("Observability: what JSON logs and metrics cost, and the readiness probe")
    # One client address for every submission and probe: the per-address limits would
    # measure themselves.
    system = System("bench_obs", extra_env={"OURVOICE_SUBMISSIONS_PER_MINUTE": "0",
                                            "OURVOICE_PUBLIC_READS_PER_MINUTE": "0"})
    conninfo = f"host={HOST} user={PG_USER} dbname={system.dbname}"
    runs: list[Run] = []
    load_before = os.getloadavg()[0]
    try:
        Progress("system").update("creating database and vhost", force=True)
        system.create()
        with admin_connection() as stats:
            # Bare, watched, watched, bare, ...: a drift of the machine over the runs
            # (the store's growth, someone else's load) weighs on both alike.
            for n in range(rounds):
                for setup in (BARE, WATCHED) if n % 2 == 0 else (WATCHED, BARE):
                    runs.append(one_run(system, setup, conninfo, stats, threads, seconds,
                                        results))
        summarise(runs, seconds, threads, results)
        # The probes with the services as operators run them (the last watched settings).
        if runs[-1].setup is not WATCHED:
            restart(system, WATCHED)
        probes(system, conninfo, probes_per_service, "idle", results)
        with load(system, threads):
            probes(system, conninfo, probes_per_service, "under load", results)
    finally:
        system.destroy()
    results.details["obs.load_average"] = {"start": round(load_before, 2),
                                           "end": round(os.getloadavg()[0], 2)}


def summarise(runs: list[Run], seconds: float, threads: int, results: Results) -> None:
    def mean(setup: Setup, figure: str) -> float:
        return statistics.fmean(getattr(r, figure) for r in runs if r.setup is setup)

    each = sum(r.setup is BARE for r in runs)
    bare = results.add("obs.e2e.bare", f"End-to-end cases/s, {BARE.name} (mean of {each})",
                       mean(BARE, "cases_per_second"), "/s", tag="bare")
    results.add("obs.e2e.watched", f"End-to-end cases/s, {WATCHED.name} (mean of {each})",
                mean(WATCHED, "cases_per_second"), "/s", baseline=bare)
    bare_cpu = results.add("obs.cpu.bare", f"CPU per case, the four services, {BARE.name}",
                           mean(BARE, "services_cpu_ms"), "ms", tag="bare CPU")
    results.add("obs.cpu.watched", f"CPU per case, the four services, {WATCHED.name}",
                mean(WATCHED, "services_cpu_ms"), "ms", baseline=bare_cpu)
    results.details["obs.runs"] = {"seconds": seconds, "threads": threads, "runs": [
        {"setup": r.setup.tag, "cases_per_second": round(r.cases_per_second, 2),
         "services_cpu_ms_per_case": round(r.services_cpu_ms, 2)} for r in runs]}
    results.notes.append(
        f"Observability, {seconds:.0f} s at full speed a run, in this order: "
        + "; ".join(f"{r.setup.tag} {r.cases_per_second:.1f} cases/s "
                    f"({r.services_cpu_ms:.1f} ms CPU a case)" for r in runs)
        + f". Bare: {BARE.name}; watched: {WATCHED.name}. The probes ran with the services "
        "watched, each /health/ready after a /health/live of the same service.")


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.observability`: this phase alone."""
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every duration and count (e.g. 0.2 for a quick check)")
    scale = parser.parse_args(argv).scale
    results = Results()
    observability(results, seconds=15 * scale, probes_per_service=max(50, round(300 * scale)))
    print(results.table())
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
