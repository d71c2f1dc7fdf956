"""Writes to PostgreSQL: the raw single-row commit rate (baseline A), and event appends
through the platform's event store, one new case per transaction as intake's submit does.

Both run one client, back to back, so each transaction waits for the previous commit's
flush: what they measure is the cost of one durable write, not the server's parallelism."""

from __future__ import annotations

import time
from itertools import cycle

import psycopg

from bench.cases import COMMUNES, new_case
from bench.infra import (
    Progress,
    admin_connection,
    cpu_seconds,
    flush_statistics,
    percentile,
    phase,
    run_for,
    scratch_database,
    transactions,
)
from bench.report import Results
from services.intake.application import Intake
from shared.store import open_store

# About the size of a stored CaseSubmitted (its state and topic), so that both write
# much the same amount of WAL per transaction.
ROW_BYTES = 800


def raw_commits(results: Results, seconds: float) -> None:
    phase("PostgreSQL: raw single-row commits (baseline A)")
    with (scratch_database() as pg, psycopg.connect(pg.conninfo(), autocommit=True) as conn,
          admin_connection() as stats):
        conn.execute("CREATE TABLE bench_rows (id bigserial PRIMARY KEY, body bytea NOT NULL)")
        body = b"x" * ROW_BYTES
        results.environment.update({
            "postgresql": conn.execute("SHOW server_version").fetchone()[0],
            "postgresql synchronous_commit": conn.execute("SHOW synchronous_commit").fetchone()[0],
            "postgresql fsync": conn.execute("SHOW fsync").fetchone()[0],
        })

        def insert() -> None:
            conn.execute("INSERT INTO bench_rows (body) VALUES (%s)", (body,))

        # What one commit costs the server: the CPU of this connection's backend and the
        # transactions the statistics count, the baselines of a case's cost end to end.
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        flush_statistics(conn)
        time.sleep(0.2)
        xacts_before, cpu_before = transactions(stats, pg.dbname), cpu_seconds(backend)
        run = run_for(seconds, insert, Progress("commits"))
        backend_seconds = cpu_seconds(backend) - cpu_before
        flush_statistics(conn)
        time.sleep(0.2)
        xacts = transactions(stats, pg.dbname) - xacts_before
        stored = conn.execute("SELECT count(*) FROM bench_rows").fetchone()[0]
    if stored != run.count:
        results.failures.append(f"raw commits: {run.count} inserted but {stored} rows stored")
    ms = [s * 1000 for s in run.latencies]
    results.add("pg.commits", "PostgreSQL single-row commits (autocommit INSERT)", run.rate, "/s",
                tag="A")
    results.add("pg.commit.p50", "PostgreSQL commit latency p50", percentile(ms, 50), "ms", tag="A50")
    results.add("pg.commit.p99", "PostgreSQL commit latency p99", percentile(ms, 99), "ms", tag="A99")
    # Both readings count one statement of their own (pg_stat_force_next_flush), hence -1.
    results.add("pg.commit.cpu", "PostgreSQL CPU per raw commit (its backend)",
                1000 * backend_seconds / run.count, "ms", tag="Acpu")
    results.add("pg.commit.transactions", "Database transactions per raw row",
                (xacts - 1) / run.count, "tx", tag="Atx")
    results.details["pg.commits"] = {"count": run.count, "seconds": round(run.seconds, 3),
                                     "backend_cpu_seconds": round(backend_seconds, 3),
                                     "transactions": xacts}


def event_appends(results: Results, seconds: float) -> None:
    phase("Event store: one new case per transaction (Intake store)")
    baseline = results.find("pg.commits")
    communes = cycle(COMMUNES)
    build_seconds: list[float] = []
    record_seconds: list[float] = []
    with scratch_database() as pg:
        store = open_store(Intake, pg)
        try:
            store.record(new_case(next(communes)))  # the pool and the type adapters warm up

            def append() -> None:
                t0 = time.perf_counter()
                case = new_case(next(communes))
                t1 = time.perf_counter()
                store.record(case)
                build_seconds.append(t1 - t0)
                record_seconds.append(time.perf_counter() - t1)

            run = run_for(seconds, append, Progress("appends"))
            stored = store.recorder.max_notification_id() or 0
        finally:
            store.close()
    if stored != run.count + 1:
        results.failures.append(f"event appends: {run.count + 1} recorded but the log ends at {stored}")
    results.add("store.appends", "Event appends, one case per transaction (Intake store)", run.rate,
                "/s", baseline=baseline)
    record_ms = [s * 1000 for s in record_seconds]
    results.add("store.append.p50", "Event append latency p50 (store.record)", percentile(record_ms, 50),
                "ms", baseline=results.find("pg.commit.p50"))
    results.details["store.appends"] = {
        "count": run.count,
        "seconds": round(run.seconds, 3),
        "mean_build_case_ms": round(1000 * sum(build_seconds) / len(build_seconds), 4),
        "mean_record_ms": round(sum(record_ms) / len(record_ms), 4),
        "p99_record_ms": round(percentile(record_ms, 99), 4),
    }
