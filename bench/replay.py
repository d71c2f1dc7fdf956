"""Replaying read models, and a case's history for an auditor.

A database of its own is filled with a million stored events (cases going through
intake and routing: submitted, routed, acknowledged, a question and its answer, resolved,
feedback, closed), then:

- the raw baseline: the same rows the rebuild replays, read with a plain streaming
  `SELECT` (the rows the reports' tracking says were applied, joined with the logs);
- the reports' read model rebuilt from those events beside the live one, as
  `ourvoice projections rebuild reporting` does: envelopes made from the stored events,
  read back as the consumer reads them, applied in time order, then swapped in;
- the history of a case with 200 events, as the audit endpoint computes it.

`python -m bench.replay [--events N]` runs it; `replay(results, events)` has the shape of
the other phases of `python -m bench`."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from bench.cases import COMMUNES, new_case
from bench.infra import Progress, phase, scratch_database
from bench.report import Results
from ourvoice import audit
from ourvoice.registry import stores
from services.intake.application import Intake
from services.reporting import readmodels
from services.routing.domain import Case as RoutedCase
from services.routing.service import Routing, policies
from shared import access, accounts
from shared.categories import categories
from shared.db import FOLLOWERS_DDL, Database
from shared.events import EVENT_TYPES
from shared.rebuild import rebuild_subscriber
from shared.store import open_store

CASES_PER_TRANSACTION = 500
EVENTS_PER_CASE = 9  # 8 public, 1 internal (routing's ClockRestarted)


def _routed(case) -> RoutedCase:
    now = datetime.now(UTC)
    return RoutedCase.route(case_id=case.id, tracking_code=case.tracking_code,
                            commune=case.commune, case_type=case.type,
                            category=categories()[case.category], received_at=now,
                            policies=policies())


def _worked(number: int) -> tuple[list, list]:
    """A case through its whole life: three events in intake, six in routing."""
    submitted = new_case(COMMUNES[number % len(COMMUNES)])
    routed = _routed(submitted)
    office = routed.office_id
    now = datetime.now(UTC)
    routed.acknowledge(by="staff")
    routed.request_information("Which village?", by="staff", now=now)
    submitted.send_message("Phum Thmei", "waiting-for-citizen", "q", office)
    routed.information_provided(now=now + timedelta(seconds=1))
    routed.resolve("repaired", by="staff")
    submitted.give_feedback(True, 4, None, "resolved", "r", office)
    routed.feedback(satisfied=True)
    return [submitted], [routed]


def fill(pg, events: int) -> int:
    """Store about `events` events; returns how many were stored."""
    intake, routing = open_store(Intake, pg), open_store(Routing, pg)
    progress = Progress("storing events")
    stored, number = 0, 0
    try:
        while stored < events:
            mine, theirs = [], []
            for _ in range(min(CASES_PER_TRANSACTION, (events - stored) // EVENTS_PER_CASE + 1)):
                a, b = _worked(number)
                number += 1
                mine += a
                theirs += b
            intake.record(*mine)
            routing.record(*theirs)
            stored += EVENTS_PER_CASE * len(mine)
            progress.update(f"{stored:,} of {events:,}")
        progress.done(f"{stored:,} events of {number:,} cases")
    finally:
        intake.close()
        routing.close()
    return stored


def long_case(pg, events: int = 200) -> str:
    """A case with `events` events across intake and routing: questions and answers."""
    intake, routing = open_store(Intake, pg), open_store(Routing, pg)
    try:
        submitted = new_case(COMMUNES[0])
        routed = _routed(submitted)
        routed.acknowledge(by="staff")
        count, now = 3, datetime.now(UTC)
        while count + 3 <= events:
            routed.request_information("Which village?", by="staff", now=now)
            submitted.send_message("Phum Thmei", "waiting-for-citizen", f"q{count}",
                                   routed.office_id)
            routed.information_provided(now=now)
            count += 3
        intake.record(submitted)
        routing.record(routed)
        return submitted.tracking_code
    finally:
        intake.close()
        routing.close()


def replay(results: Results, events: int = 1_000_000) -> None:
    phase(f"Replay: the reports' read model rebuilt from {events:,} stored events")
    public = r"\.(" + "|".join(EVENT_TYPES) + ")$"
    with scratch_database() as pg:
        stored = fill(pg, events)
        code = long_case(pg)
        db = Database(pg, max_size=2)
        try:
            db.migrate(FOLLOWERS_DDL, *readmodels.DDL, *access.DDL, *accounts.DDL)
            with db.transaction() as cursor:
                # As if the live model had applied every public event: the rebuild replays
                # exactly what its tracking table lists.
                for store in ("intake", "routing"):
                    cursor.execute(f"INSERT INTO reporting_tracking SELECT %s, notification_id "
                                   f"FROM {store}_events WHERE topic ~ %s", (store, public))
                cursor.execute("SELECT count(*) AS n FROM reporting_tracking")
                replayed = cursor.fetchone()["n"]
            with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            with psycopg.connect(pg.conninfo()) as conn:
                started = time.perf_counter()
                rows = 0
                with conn.transaction():
                    for store in ("intake", "routing"):
                        with conn.cursor(name=f"raw_{store}") as cursor:
                            cursor.itersize = 5000
                            cursor.execute(
                                f"SELECT e.notification_id, e.originator_id, e.originator_version,"
                                f" e.topic, e.state FROM {store}_events e JOIN reporting_tracking t"
                                f" ON t.application_name = %s AND t.notification_id = e.notification_id"
                                f" ORDER BY e.notification_id", (store,))
                            for _ in cursor:
                                rows += 1
                raw_seconds = time.perf_counter() - started
            raw = results.add("replay.raw", "Raw streaming SELECT of the replayed rows",
                              rows / raw_seconds, "/s", tag="R")
            progress = Progress("replaying")
            done = 0

            def advance(n: int) -> None:
                nonlocal done
                done += n
                progress.update(f"{done:,} of {replayed:,}, "
                                f"{done / (time.perf_counter() - started):,.0f} events/s")

            started = time.perf_counter()
            outcome = rebuild_subscriber(db, readmodels.READ_MODEL, list(stores().values()), swap=True,
                                         progress=advance)
            seconds = time.perf_counter() - started
            progress.done(f"{outcome.events:,} events in {seconds:.1f} s")
            results.add("replay.reports", "Rebuild of the reports' read model (events replayed)",
                        outcome.events / seconds, "/s", baseline=raw)
            with db.transaction() as cursor:
                cursor.execute("SELECT count(*) AS n FROM reporting_cases")
                cases = cursor.fetchone()["n"]
            durations = []
            for _ in range(30):
                begun = time.perf_counter()
                found = audit.history(db, code)
                durations.append((time.perf_counter() - begun) * 1000)
            results.add("audit.history.200",
                        f"History of a case with {len(found['events'])} events (median of 30)",
                        statistics.median(durations), "ms")
            results.details["replay"] = {
                "stored_events": stored, "replayed_events": outcome.events,
                "raw_rows": rows, "raw_seconds": round(raw_seconds, 3),
                "replay_seconds": round(seconds, 3), "cases_in_read_model": cases,
                "history_ms": [round(d, 2) for d in durations],
            }
        finally:
            db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    results = Results()
    replay(results, args.events)
    print()
    print(results.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
