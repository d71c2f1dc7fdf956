"""What an office's staff wait for: a page of the queue of an office holding 10,000 open
cases, and a case file, each through routing's HTTP endpoint with its RPC to intake,
beside a raw indexed read of as many rows in the same database in the same run.

Intake and routing run as processes (tests/system.py). The office's 10,000 cases are
copied into routing's store by bench/fill.py (real CaseRouted events, their queue rows
from the real projection), with intake's case list given a row for each (a description
of two lines), so that the queue's first lines are read as in production: one batch RPC
per page. The followers of routing's log are moved past the copies, so no relay
publishes them. The case files read are of real cases, submitted over HTTP to the same
office; each reading appends its CaseFileOpened, as in production.

Measured, turn about, READS times each:
- the raw read: 50 rows of a plain indexed table of 10,000 rows (`id > x ORDER BY id`);
- the queue's own SQL (`readmodels.read_queue` and `readmodels.queue_counts`) for the first page
  and for page 101 (a keyset cursor, not an offset);
- GET /v1/offices/{office}/queue, first page and page 101, HTTP and intake's first lines;
- GET /v1/cases/{case_id}: the case file, with intake's RPC and the reading recorded.

The pages are also walked end to end once: every case exactly once, in order."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

import psycopg
import requests
from psycopg.rows import dict_row

from bench import fill
from bench.infra import Progress, percentile, phase
from bench.report import Results
from services.routing import readmodels
from services.routing.casefile import decode_cursor
from shared.config import Postgres
from shared.db import Database
from tests.system import System, complaint, submit, wait_until

OFFICE = fill.BIG_OFFICE  # owso-1201
OPEN_CASES = 10_000
PAGE = 50
LATER_PAGE = 101  # cases 5,001 to 5,050
CASE_FILES = 20  # real cases whose files are read in turn
READS = 200


def ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


def timed(call) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def fill_office(system: System, cases: int) -> None:
    """The office's cases copied into routing's store (routing stopped meanwhile), each
    with its row in intake's case list."""
    conninfo = f"host=127.0.0.1 port={system.pg_port} user=postgres dbname={system.dbname}"
    progress = Progress(f"copying {cases:,} open cases into {OFFICE}")
    filler = fill.Filler(conninfo, fill.Prototypes(datetime.now(UTC).replace(
        minute=0, second=0, microsecond=0)))
    try:
        filler.fill(fill.Spec(big=cases), lambda n: progress.update(f"{n:,}"))
    finally:
        filler.close()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        head = conn.execute("SELECT max(notification_id) FROM routing_events").fetchone()[0]
        # Every follower of routing's log past the copies: nothing publishes or re-applies them.
        for name in ("relay:routing", f"projection:{readmodels.OFFICE_QUEUE.name}",
                     f"projection:{readmodels.DEADLINE_TIMERS.name}",
                     f"projection:{readmodels.OFFICE_AMENDMENTS.name}"):
            conn.execute("INSERT INTO ourvoice_followers (name, position) VALUES (%s, %s)"
                         " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position",
                         (name, head))
        conn.execute(
            """INSERT INTO intake_cases (case_id, tracking_code, type, category, commune, channel,
                   sensitive, public_description, submitted_at)
               SELECT case_id, tracking_code, type, category, '120101', 'app', false,
                      'The ' || category || ' office has not answered for weeks, case '
                      || row_number() OVER () || E'\\nSecond line of the description.',
                      routed_at
               FROM routing_office_queue WHERE office_id = %s ON CONFLICT DO NOTHING""",
            (OFFICE,))
        conn.execute("CREATE TABLE bench_rows (id bigserial PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO bench_rows (body) SELECT repeat('x', 120) "
                     "FROM generate_series(1, %s)", (cases,))
        for table in ("routing_office_queue", "intake_cases", "bench_rows", "routing_events"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
    progress.done(f"{cases:,} cases copied")


def case_file(results: Results, reads: int = READS, cases: int = OPEN_CASES) -> None:
    phase(f"Case file and office queue: an office of {cases:,} open cases")
    system = System("bench_case_file", extra_env={"OURVOICE_SUBMISSIONS_PER_MINUTE": "0",
                                                  "POSTGRES_POOL_SIZE": "2",
                                                  "POSTGRES_MAX_OVERFLOW": "2"})
    system.create()
    try:
        system.start("intake")
        system.start("routing")  # creates its read models
        system.stop("routing")
        fill_office(system, cases)
        system.start("routing")
        token = system.principal("staff", OFFICE)
        real = [submit(system, complaint(category="land", location={"commune": "120101"}))
                for _ in range(CASE_FILES)]
        wait_until(lambda: system.scalar(
            "SELECT count(*) FROM routing_office_queue WHERE office_id = %s", (OFFICE,))
            == cases + CASE_FILES, timeout=120, what="the real cases in the queue")
        measure(system, results, token, real, reads, cases)
    finally:
        system.destroy()


def measure(system: System, results: Results, token: str, real: list[dict], reads: int,
            cases: int) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    queue_url = system.url("routing", f"/v1/offices/{OFFICE}/queue")

    # The whole queue, page by page: each case once, nearest deadline first.
    seen, cursor, later_cursor, pages = [], None, None, 0
    while True:
        page = session.get(queue_url, params={"limit": PAGE, **({"cursor": cursor} if cursor
                                                                  else {})}, timeout=30).json()
        pages += 1
        if pages == LATER_PAGE:
            later_cursor = cursor
        seen += page["cases"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = cases + len(real)
    if len(seen) != expected or len({c["case_id"] for c in seen}) != expected:
        results.failures.append(f"queue pages: {len(seen)} rows, "
                                f"{len({c['case_id'] for c in seen})} distinct, not {expected}")
    keys = [(c["acknowledge_due"] or c["resolve_due"] or "~") for c in seen]
    if keys != sorted(keys):
        results.failures.append("queue pages: not nearest deadline first")
    if not all(c["first_line"] for c in seen):
        results.failures.append("queue pages: a first line is missing")

    pg = Postgres(dbname=system.dbname, host="127.0.0.1", port=system.pg_port, user="postgres",
                  password="")
    db = Database(pg, max_size=1)
    raw = psycopg.connect(pg.conninfo(), autocommit=True, row_factory=dict_row)
    later_after = decode_cursor(later_cursor) if later_cursor else None

    def sql_page(after) -> None:
        with db.transaction() as cur:
            readmodels.read_queue(cur, OFFICE, PAGE + 1, {}, after, datetime.now(UTC))
            readmodels.queue_counts(cur, OFFICE, {}, datetime.now(UTC))

    def raw_read() -> None:
        start = (int(time.perf_counter_ns()) % max(1, cases - PAGE))
        rows = raw.execute("SELECT id, body FROM bench_rows WHERE id > %s ORDER BY id LIMIT %s",
                           (start, PAGE)).fetchall()
        assert len(rows) == PAGE

    def http_page(after_cursor) -> None:
        response = session.get(queue_url, params={"limit": PAGE, **(
            {"cursor": after_cursor} if after_cursor else {})}, timeout=30)
        assert response.status_code == 200, response.text

    file_number = [0]

    def read_file() -> None:
        case = real[file_number[0] % len(real)]
        file_number[0] += 1
        response = session.get(system.url("routing", f"/v1/cases/{case['case_id']}"), timeout=30)
        assert response.status_code == 200, response.text

    timings = {name: [] for name in ("raw", "sql_first", "sql_later", "http_first", "http_later",
                                     "case_file")}
    steps = {"raw": raw_read, "sql_first": lambda: sql_page(None),
             "sql_later": lambda: sql_page(later_after),
             "http_first": lambda: http_page(None), "http_later": lambda: http_page(later_cursor),
             "case_file": read_file}
    for step in steps.values():  # plans, caches and connections warm
        step()
    progress = Progress("queue pages, case files and raw reads, turn about")
    for n in range(reads):
        for name, step in steps.items():
            timings[name].append(timed(step))
        progress.update(f"{n + 1}/{reads}")
    progress.done("done")
    plans = {}
    for label, where in (("first page", {}), ("status", {"status": "routed"}),
                         ("assignee", {"assignee": "someone"}), ("type", {"type": "complaint"})):
        clauses, params = readmodels._where(OFFICE, where, datetime.now(UTC))
        plan = raw.execute(f"EXPLAIN SELECT case_id FROM routing_office_queue WHERE "
                           f"{' AND '.join(clauses)} ORDER BY {readmodels.SORT_KEY}, case_id LIMIT 51",
                           params).fetchall()
        plans[label] = " / ".join(next(iter(row.values())).strip() for row in plan[:2])
    raw.close()
    db.close()

    def p(name, q):
        return percentile(ms(timings[name]), q)

    baseline = results.add("casefile.raw", f"Raw indexed read of {PAGE} rows, plain table of "
                           f"{cases:,} rows, p50", p("raw", 50), "ms", tag=f"R{PAGE}")
    total = cases + len(real)
    results.add("casefile.queue.sql.first", f"Queue page SQL (page and counts), office of "
                f"{total:,} open cases, first page, p50", p("sql_first", 50), "ms",
                baseline=baseline)
    results.add("casefile.queue.sql.later", f"Queue page SQL, page {LATER_PAGE} (keyset cursor), "
                "p50", p("sql_later", 50), "ms", baseline=baseline)
    results.add("casefile.queue.http.first", "GET queue (HTTP, intake's first lines), first "
                "page, p50", p("http_first", 50), "ms", baseline=baseline)
    results.add("casefile.queue.http.first.p99", "GET queue, first page, p99",
                p("http_first", 99), "ms", baseline=baseline)
    results.add("casefile.queue.http.later", f"GET queue, page {LATER_PAGE}, p50",
                p("http_later", 50), "ms", baseline=baseline)
    results.add("casefile.queue.http.later.p99", f"GET queue, page {LATER_PAGE}, p99",
                p("http_later", 99), "ms", baseline=baseline)
    results.add("casefile.read.p50", "GET case file (HTTP, intake's RPC, reading recorded), p50",
                p("case_file", 50), "ms", baseline=baseline)
    results.add("casefile.read.p99", "GET case file, p99", p("case_file", 99), "ms",
                baseline=baseline)
    results.details["casefile"] = {
        "open_cases": total, "pages_walked": pages, "reads": reads,
        "ms": {name: {"p50": round(p(name, 50), 3), "p99": round(p(name, 99), 3)}
               for name in timings},
        "plans": plans,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.case_file", description=__doc__)
    parser.add_argument("--reads", type=int, default=READS)
    parser.add_argument("--cases", type=int, default=OPEN_CASES)
    args = parser.parse_args(argv)
    results = Results()
    case_file(results, args.reads, args.cases)
    print()
    print(results.table())
    for label, plan in results.details.get("casefile", {}).get("plans", {}).items():
        print(f"plan, {label}: {plan}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
