"""Figures at scale: routing's store grown to a million events, and what its appends,
reads, deadline sweep and replays cost there, each beside a raw baseline of the same run.

1. growth: three stores of 10,000, 100,000 and 1,000,000 events, each in a database of
   its own (bench/fill.py fills them), measured turn about: one append to each store
   (`store.record` of one new routed case, one per transaction), one raw single-row
   INSERT into a plain table of the same row count beside each, and so on round after
   round; then likewise the read of one office's queue (`readmodels.read_queue`, an office
   of a few hundred open cases whose district gets no other traffic) against a raw
   indexed read of as many rows. Taking the sizes turn about, not one after the other,
   keeps whatever else loads the machine out of the ratio of the 1,000,000 figure to
   the 10,000 one, which says whether size costs anything;

then, in the store of a million events:

2. the office queue of an office holding 10,000 open cases, filled among the rest;
3. a case with 200 events (routed, then 199 notes) read back as history
   (`store.events.get`) and as the aggregate (`store.repository.get`), against a raw
   SELECT of its 200 rows;
4. the deadline sweep: `readmodels.due_cases` over 1,000,000 running deadlines (synthetic
   rows, `generate_series`: only the timers table is read) with none due, then with
   1,000 real routed cases overdue among them, and the sweep of those 1,000 as routing's
   timer does it (load, `check_deadlines`, record) against raw read-then-write
   transactions taken turn about with it;
5. replay: the office queue rebuilt beside the live one (`shared.rebuild.rebuild`,
   `swap=False`, compared row for row with the live table at the end) against a raw
   SELECT of the same rows in the same batches: over the store of 100,000 events, then
   over the whole large store, unless the speed shown over 100,000 says that would take
   more than REPLAY_BUDGET seconds (the notes then say so): the bench is meant to
   finish within about ten minutes on two cores.

Before measuring, the tables are vacuumed and analysed, as autovacuum would have done on
a system that grew to that size over months. OURVOICE_BENCH_SCALE scales every size."""

from __future__ import annotations

import os
import random
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg

from bench import fill
from bench.infra import Progress, percentile, phase, scratch_database
from bench.postgres import ROW_BYTES
from bench.report import Figure, Results
from services.routing import readmodels
from services.routing.domain import Case
from services.routing.service import Routing, policies
from shared import settings
from shared.chain import verify
from shared.db import FOLLOWERS_DDL, Database
from shared.follower import LogFollower
from shared.rebuild import rebuild
from shared.store import Projection, open_store

SCALE_VARIABLE = "OURVOICE_BENCH_SCALE"
FULL_CHECKPOINTS = (10_000, 100_000, 1_000_000)
WATCHED_CASES = 200  # open cases in the office whose queue is read at each size
BIG_OFFICE_CASES = 10_000
DEADLINES = 1_000_000  # running deadlines in the timers table for the sweep's query
DUE = 1_000  # overdue cases swept
HISTORY = 200  # events of the case whose history is read
READS = 200  # repetitions of each read
APPENDS = 3_000  # appends timed in each store (p99: the 30th slowest), unless time runs out
QUEUE_LIMIT = 500  # what routing's queue endpoint asks for
SWEEP_LIMIT = 500  # what routing's sweep asks for
NOTE = "Called the citizen back; the water point is to be repaired this week."

# The targets the figures are held to, checked in the notes.
GROWTH_TARGET = 1.2
DUE_TARGET_MS = 10.0
REPLAY_TARGET = 20_000.0
HISTORY_TARGET_MS = 20.0
# The most the replay over the whole large store may take, as predicted by the first.
REPLAY_BUDGET = 200.0


def scale_factor() -> float:
    """OURVOICE_BENCH_SCALE: the fraction of the full sizes to use (default 1)."""
    value = float(os.environ.get(SCALE_VARIABLE, "1"))
    if value <= 0:
        raise ValueError(f"{SCALE_VARIABLE} must be positive, not {value}")
    return value


def short(n: int) -> str:
    """10k, 1.01M: three figures at most, for tags, which must stay short."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.3g}{suffix}"
    return str(n)


@dataclass(frozen=True)
class Sizes:
    checkpoints: tuple[int, ...]
    watched: int
    big_office: int
    deadlines: int
    due: int

    @classmethod
    def scaled(cls, factor: float) -> Sizes:
        # Below 1% the sizes say too little to be worth the set-up.
        factor = max(factor, 0.01)
        checkpoints = tuple(max(100, round(n * factor)) for n in FULL_CHECKPOINTS)
        return cls(
            checkpoints=checkpoints,
            watched=min(WATCHED_CASES, checkpoints[0] // 2),
            big_office=min(BIG_OFFICE_CASES, checkpoints[-1] // 4),
            deadlines=max(1_000, round(DEADLINES * factor)),
            due=min(DUE, max(100, round(DUE * 10 * factor))),
        )


def ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


def p50(seconds: list[float]) -> float:
    return percentile(ms(seconds), 50)


def summary(seconds: list[float]) -> dict[str, float]:
    values = ms(seconds)
    return {"n": len(values), "p50": round(percentile(values, 50), 4),
            "p90": round(percentile(values, 90), 4), "p99": round(percentile(values, 99), 4),
            "max": round(max(values), 4) if values else float("nan")}


@contextmanager
def small_pools() -> Iterator[None]:
    """The store's pool at one connection: everything here runs one thing at a time,
    and the server's connections are shared with everyone else on it."""
    saved = {name: os.environ.get(name) for name in ("POSTGRES_POOL_SIZE", "POSTGRES_MAX_OVERFLOW")}
    os.environ.update(POSTGRES_POOL_SIZE="1", POSTGRES_MAX_OVERFLOW="0")
    settings.reload()  # read at start, so read again
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        settings.reload()


class Site:
    """A database of its own: a routing store, its read models, and a plain table
    beside them that the raw baselines use."""

    def __init__(self, prototypes: fill.Prototypes):
        self.stack = ExitStack()
        try:
            pg = self.stack.enter_context(scratch_database())
            with small_pools():
                self.store = open_store(Routing, pg)
            self.stack.callback(self.store.close)
            self.db = Database(pg, max_size=2)
            self.stack.callback(self.db.close)
            self.db.migrate(FOLLOWERS_DDL, *readmodels.QUEUE_DDL, *readmodels.TIMERS_DDL)
            self.raw = psycopg.connect(pg.conninfo(), autocommit=True)
            self.stack.callback(self.raw.close)
            self.raw.execute("CREATE TABLE bench_rows (id bigserial PRIMARY KEY,"
                             " body bytea NOT NULL)")
        except BaseException:
            self.stack.close()
            raise
        self.conninfo = pg.conninfo()
        self.prototypes = prototypes
        self.body = b"x" * ROW_BYTES
        self.plain_rows = 0
        self.random = random.Random(7)

    def close(self) -> None:
        """Closes its connections and drops its database; again is harmless."""
        self.stack.close()

    def head(self) -> int:
        return self.store.recorder.max_notification_id() or 0

    def set_position(self, projection: Projection, position: int) -> None:
        with self.db.transaction() as cursor:
            cursor.execute(
                "INSERT INTO ourvoice_followers (name, position) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position",
                (f"projection:{projection.name}", position))

    def catch_up(self, projection: Projection) -> int:
        """Let the real projection apply whatever it has not seen yet."""
        follower = LogFollower(f"projection:{projection.name}", self.db, self.store.recorder,
                               projection.handler(self.store), batch_size=2000)
        applied = 0
        while handled := follower.follow_once():
            applied += handled
        return applied

    def maintain(self, *tables: str) -> None:
        for table in tables:
            self.raw.execute(f"VACUUM (ANALYZE) {table}")

    def checkpoint(self) -> None:
        # Bulk writes leave many dirty pages behind; flushed now, they do not land in
        # the middle of timed work.
        self.raw.execute("CHECKPOINT")

    def fill_to(self, events: int, *, watched: int = 0, big: int = 0) -> None:
        """Bulk-fill the store to `events` stored events, one CaseRouted per case, and
        the plain table to as many rows."""
        cases = events - self.head()
        progress = Progress(f"filling a store to {events:,} events")
        if cases > 0:
            done = first = self.head()
            start = time.perf_counter()

            def advance(n: int) -> None:
                nonlocal done
                done += n
                rate = (done - first) / (time.perf_counter() - start)
                progress.update(f"{done:,}/{events:,} events, {rate:,.0f}/s")

            # A connection of its own, only while filling: the server's are shared.
            filler = fill.Filler(self.conninfo, self.prototypes)
            try:
                filler.fill(fill.Spec(watched=watched, big=big, spread=cases - watched - big),
                            advance)
            finally:
                filler.close()
            progress.done(f"{done:,} events stored ({cases / (time.perf_counter() - start):,.0f}/s)")
            # The bulk fill wrote the office-queue rows of exactly these events.
            self.set_position(readmodels.OFFICE_QUEUE, self.head())
        progress = Progress(f"plain table of {events:,} rows, vacuum and analyse")
        progress.update("", force=True)
        if events > self.plain_rows:
            self.raw.execute("INSERT INTO bench_rows (body) SELECT %s FROM generate_series(1, %s)",
                             (self.body, events - self.plain_rows))
            self.plain_rows = events
        self.maintain("routing_events", "routing_chain", "routing_office_queue", "bench_rows")
        progress.done("done")

    # -- timed operations, each returning its seconds ---------------------------------
    def record(self, case: Case) -> float:
        t0 = time.perf_counter()
        self.store.record(case)
        return time.perf_counter() - t0

    def raw_insert(self) -> float:
        t0 = time.perf_counter()
        self.raw.execute("INSERT INTO bench_rows (body) VALUES (%s)", (self.body,))
        elapsed = time.perf_counter() - t0
        self.plain_rows += 1
        return elapsed

    def raw_read(self, rows: int) -> float:
        """A raw indexed read of `rows` rows of the plain table, about as wide as queue
        rows (the first 120 bytes of each body)."""
        start = self.random.randrange(0, max(1, self.plain_rows - rows))
        t0 = time.perf_counter()
        fetched = self.raw.execute("SELECT id, substring(body from 1 for 120) FROM bench_rows"
                                   " WHERE id > %s ORDER BY id LIMIT %s", (start, rows)).fetchall()
        elapsed = time.perf_counter() - t0
        if len(fetched) != rows:
            raise AssertionError(f"the raw read found {len(fetched)} rows, not {rows}")
        return elapsed

    def read_queue(self, office: str) -> tuple[float, int]:
        """Seconds and rows of one read, in a transaction as routing's endpoint makes."""
        with self.db.transaction() as cursor:
            t0 = time.perf_counter()
            rows = readmodels.read_queue(cursor, office, limit=QUEUE_LIMIT)
            return time.perf_counter() - t0, len(rows)

    def raw_read_then_write(self) -> float:
        """The raw counterpart of sweeping one case: a read by key, then a transaction
        writing three rows (a warning, a breach, an escalation)."""
        t0 = time.perf_counter()
        self.raw.execute("SELECT body FROM bench_rows WHERE id = %s",
                         (self.random.randrange(1, self.plain_rows),)).fetchone()
        with self.raw.transaction():
            self.raw.execute("INSERT INTO bench_rows (body) VALUES (%s), (%s), (%s)",
                             (self.body, self.body, self.body))
        elapsed = time.perf_counter() - t0
        self.plain_rows += 3
        return elapsed


@dataclass
class Reads:
    """One office's queue read in a store, and the raw reads of as many rows beside."""

    queue: list[float]
    raw: list[float]
    shown: int


def reads_turn_about(sites: list[Site], office: str, label: str) -> list[Reads]:
    """READS rounds of one queue read and one raw read in each site."""
    found = []
    for site in sites:
        _, shown = site.read_queue(office)  # plans and caches warm
        site.raw_read(shown)
        found.append(Reads([], [], shown))
    progress = Progress(label)
    for n in range(READS):
        for site, reads in zip(sites, found, strict=True):
            reads.queue.append(site.read_queue(office)[0])
            reads.raw.append(site.raw_read(reads.shown))
        progress.update(f"{n + 1}/{READS}")
    progress.done(", ".join(f"{r.shown} rows: queue p50 {p50(r.queue):.2f} ms, raw {p50(r.raw):.2f} ms"
                            for r in found))
    return found


class AtScale:
    def __init__(self, results: Results, sizes: Sizes, seconds: float, stack: ExitStack):
        self.results = results
        self.sizes = sizes
        self.seconds = seconds
        self.stack = stack
        self.prototypes = fill.Prototypes(datetime.now(UTC).replace(minute=0, second=0,
                                                                    microsecond=0))
        self.sites: list[Site] = []
        self.numbered = 0  # cases routed one by one so far, to vary their place and kind
        self.replays: list[Figure] = []  # the rebuilds' figures, smallest store first

    def site(self) -> Site:
        site = Site(self.prototypes)
        self.stack.callback(site.close)
        self.sites.append(site)
        return site

    @property
    def large(self) -> Site:
        return self.sites[-1]

    def new_case(self, received_at: datetime | None = None) -> Case:
        """A case of the general traffic, routed by the real domain and policies."""
        self.numbered += 1
        return fill.spread_case(self.numbered, received_at or datetime.now(UTC))

    # -- 1. growth ---------------------------------------------------------------------
    def growth(self) -> None:
        sizes, results = self.sizes, self.results
        for n, events in enumerate(sizes.checkpoints):
            last = n == len(sizes.checkpoints) - 1
            self.site().fill_to(events, watched=sizes.watched,
                                big=sizes.big_office if last else 0)
        self.large.checkpoint()

        for site in self.sites:
            for _ in range(5):  # connections, prepared statements and caches warm up
                site.record(self.new_case())
                site.raw_insert()
        appends: list[list[float]] = [[] for _ in self.sites]
        inserts: list[list[float]] = [[] for _ in self.sites]
        progress = Progress("appends, turn about in the " + ", ".join(
            f"{n:,}" for n in sizes.checkpoints) + " event stores")
        start = time.perf_counter()
        # APPENDS in each, or as many as the time allows on a busy machine.
        while len(appends[0]) < APPENDS and time.perf_counter() - start < self.seconds:
            for k, site in enumerate(self.sites):
                case = self.new_case()
                appends[k].append(site.record(case))
                inserts[k].append(site.raw_insert())
            progress.update(f"{len(appends[0]):,} rounds")
        progress.done(f"{len(appends[0]):,} rounds: append p50 " + ", ".join(
            f"{p50(a):.2f}" for a in appends) + " ms; raw INSERT p50 " + ", ".join(
            f"{p50(i):.2f}" for i in inserts) + " ms")
        for site in self.sites:
            site.catch_up(readmodels.OFFICE_QUEUE)  # the new cases reach the queue, as in service
        reads = reads_turn_about(self.sites, fill.WATCHED_OFFICE, "office queue reads, turn about")

        at: list[dict[str, Figure]] = []
        for events, a, i, r in zip(sizes.checkpoints, appends, inserts, reads, strict=True):
            at.append(self.growth_figures(events, a, i, r))
        first, last = sizes.checkpoints[0], sizes.checkpoints[-1]
        for key, label in (("append.p50", "Event append p50"), ("append.p99", "Event append p99"),
                           ("insert.p50", "Raw INSERT p50"), ("insert.p99", "Raw INSERT p99"),
                           ("read_queue", "Office queue read p50")):
            target = f" (target at most {GROWTH_TARGET}x)" if "insert" not in key else ""
            results.add(f"growth.{key}.ratio", f"{label} growth, {last:,} vs {first:,} rows{target}",
                        at[-1][key].value, "ms", baseline=at[0][key])

    def growth_figures(self, events: int, appends: list[float], inserts: list[float],
                       reads: Reads) -> dict[str, Figure]:
        results, tag = self.results, short(events)
        a, i = ms(appends), ms(inserts)
        figures = {
            "insert.p50": results.add(f"growth.{tag}.insert.p50",
                                      f"Raw single-row INSERT p50, plain table of {events:,} rows",
                                      percentile(i, 50), "ms", tag=f"I50@{tag}"),
            "insert.p99": results.add(f"growth.{tag}.insert.p99",
                                      f"Raw single-row INSERT p99, plain table of {events:,} rows",
                                      percentile(i, 99), "ms", tag=f"I99@{tag}"),
        }
        for kind in ("p50", "p99"):
            figures[f"append.{kind}"] = results.add(
                f"growth.{tag}.append.{kind}",
                f"Event append {kind} at {events:,} events (store.record, one routed case per "
                "transaction)", percentile(a, int(kind[1:])), "ms",
                baseline=figures[f"insert.{kind}"], tag=f"E{kind[1:]}@{tag}")
        raw_read = results.add(f"growth.{tag}.raw_read", f"Raw indexed read of {reads.shown} rows, "
                               f"plain table of {events:,} rows", p50(reads.raw), "ms",
                               tag=f"R@{tag}")
        figures["read_queue"] = results.add(
            f"growth.{tag}.read_queue", f"Office queue read p50 (readmodels.read_queue, {reads.shown} "
            f"open cases) at {events:,} events", p50(reads.queue), "ms", baseline=raw_read,
            tag=f"Q@{tag}")
        results.details[f"growth.{tag}"] = {
            "stored_events_before_appends": events, "append_ms": summary(appends),
            "raw_insert_ms": summary(inserts), "read_queue_ms": summary(reads.queue),
            "raw_read_ms": summary(reads.raw), "queue_rows_read": reads.shown,
        }
        return figures

    def first_replay(self) -> None:
        """The replay over the middle store; then only the large store is kept."""
        # The smallest store's chain, bulk links and the trigger's after them, must hold.
        verdict = verify(self.sites[0].raw, "routing")
        if not verdict.intact:
            self.results.failures.append(f"the bulk-filled store's hash chain breaks at "
                                         f"{verdict.broken_at}: {verdict.reason}")
        self.results.details["at_scale.chain_verified"] = {"links": verdict.links,
                                                           "intact": verdict.intact}
        if len(self.sites) > 1:
            self.replay(self.sites[-2])
        for site in self.sites[:-1]:
            site.close()

    # -- 2. an office with 10,000 open cases ------------------------------------------
    def big_office(self) -> None:
        site = self.large
        with site.db.transaction() as cursor:
            cursor.execute("SELECT count(*) AS n FROM routing_office_queue"
                           " WHERE office_id = %s AND status <> 'resolved'", (fill.BIG_OFFICE,))
            open_cases = cursor.fetchone()["n"]
        if open_cases != self.sizes.big_office:
            self.results.failures.append(f"big office: {open_cases} open cases, "
                                         f"not {self.sizes.big_office}")
        (reads,) = reads_turn_about([site], fill.BIG_OFFICE,
                                    f"office queue reads, an office of {open_cases:,} open cases")
        baseline = self.results.add("queue.big.raw_read", f"Raw indexed read of {reads.shown} rows, "
                                    f"plain table of {site.plain_rows:,} rows", p50(reads.raw),
                                    "ms", tag=f"R{reads.shown}")
        self.results.add("queue.big.read_queue",
                         f"Office queue read p50, office holding {open_cases:,} open cases "
                         f"({reads.shown} shown)", p50(reads.queue), "ms", baseline=baseline)
        self.results.details["queue.big"] = {
            "office_open_cases": open_cases, "rows_shown": reads.shown,
            "stored_events": site.head(), "read_queue_ms": summary(reads.queue),
            "raw_read_ms": summary(reads.raw),
        }

    # -- 3. the history of a case with 200 events --------------------------------------
    def history(self) -> None:
        site = self.large
        progress = Progress(f"a case with {HISTORY} events")
        case = self.new_case()
        site.store.record(case)
        for n in range(HISTORY - 1):
            # One note per transaction, as an office adds them.
            case.add_note(f"{NOTE} ({n + 1})", by="staff-bench")
            site.store.record(case)
            progress.update(f"{n + 2}/{HISTORY} events recorded")
        site.catch_up(readmodels.OFFICE_QUEUE)
        query = ("SELECT originator_id, originator_version, topic, state, notification_id"
                 " FROM routing_events WHERE originator_id = %s ORDER BY originator_version")
        raw, history, aggregate = [], [], []
        for n in range(READS // 4 + 3):
            t0 = time.perf_counter()
            rows = site.raw.execute(query, (case.id,)).fetchall()
            t1 = time.perf_counter()
            events = list(site.store.events.get(case.id))
            t2 = time.perf_counter()
            loaded = site.store.repository.get(case.id)
            t3 = time.perf_counter()
            if len(rows) != HISTORY or len(events) != HISTORY or loaded.version != HISTORY:
                raise AssertionError(f"the case has {len(rows)} rows, {len(events)} events, "
                                     f"version {loaded.version}; expected {HISTORY}")
            if n >= 3:  # the first reads warm the plans and caches
                raw.append(t1 - t0)
                history.append(t2 - t1)
                aggregate.append(t3 - t2)
        progress.done(f"history p50 {p50(history):.2f} ms, aggregate p50 {p50(aggregate):.2f} ms,"
                      f" raw p50 {p50(raw):.2f} ms")
        baseline = self.results.add("history.raw", f"Raw SELECT of one case's {HISTORY} event rows",
                                    p50(raw), "ms", tag=f"H{HISTORY}")
        self.results.add("history.events", f"History of a case with {HISTORY} events, p50 "
                         f"(store.events.get; target at most {HISTORY_TARGET_MS:g} ms)",
                         p50(history), "ms", baseline=baseline)
        self.results.add("history.aggregate", f"Case with {HISTORY} events loaded, p50 "
                         "(store.repository.get)", p50(aggregate), "ms", baseline=baseline)
        self.results.details["history"] = {
            "events": HISTORY, "stored_events": site.head(), "raw_select_ms": summary(raw),
            "events_get_ms": summary(history), "repository_get_ms": summary(aggregate),
        }

    # -- 4. the deadline sweep ---------------------------------------------------------
    def deadlines(self) -> None:
        sizes, results, site = self.sizes, self.results, self.large
        progress = Progress(f"{sizes.deadlines:,} running deadlines (generate_series)")
        progress.update("inserting", force=True)
        # Two deadlines per case, as routing keeps them, all due from a day ahead on.
        site.raw.execute(
            """INSERT INTO routing_deadlines (case_id, deadline, due_at, warn_at, warned, next_at)
               SELECT md5('bench-' || g)::uuid, d.name,
                      now() + interval '3 days' + (g %% 20000) * interval '1 minute',
                      now() + interval '1 day' + (g %% 20000) * interval '1 minute',
                      false, now() + interval '1 day' + (g %% 20000) * interval '1 minute'
               FROM generate_series(1, %s) g,
                    (VALUES ('acknowledge'), ('resolve')) d (name)""",
            (sizes.deadlines // 2,))
        site.maintain("routing_deadlines")
        site.checkpoint()
        progress.done(f"{sizes.deadlines:,} deadlines stored, vacuumed and analysed")

        none_due, empty = self.due_reads("sweep query, none due", expect=0)
        empty_read = results.add("sla.raw_read.empty", "Raw indexed read of an empty key range, "
                                 f"plain table of {site.plain_rows:,} rows", p50(empty), "ms",
                                 tag="R0")
        results.add("sla.due.none", f"Sweep query p50 (readmodels.due_cases), {sizes.deadlines:,} "
                    f"running deadlines, none due (target at most {DUE_TARGET_MS:g} ms)",
                    p50(none_due), "ms", baseline=empty_read)

        # Overdue cases, routed and recorded as routing does, their timers set by the real
        # projection from their events.
        site.set_position(readmodels.DEADLINE_TIMERS, site.head())
        progress = Progress(f"{sizes.due:,} overdue cases")
        long_ago = datetime.now(UTC) - timedelta(days=60)
        routed = 0
        while routed < sizes.due:
            case = self.new_case(long_ago - timedelta(minutes=routed))
            if not case.deadlines:  # a rating has no deadline to miss
                continue
            site.store.record(case)
            routed += 1
            progress.update(f"{routed:,}/{sizes.due:,} routed")
        site.catch_up(readmodels.DEADLINE_TIMERS)
        site.catch_up(readmodels.OFFICE_QUEUE)
        site.maintain("routing_deadlines")
        with site.db.transaction() as cursor:
            cursor.execute("SELECT count(*) AS rows, count(DISTINCT case_id) AS cases"
                           " FROM routing_deadlines WHERE next_at <= now()")
            due = cursor.fetchone()
        progress.done(f"{due['cases']:,} cases due ({due['rows']:,} deadlines)")
        if due["cases"] != sizes.due:
            results.failures.append(f"sweep: {due['cases']} cases due, not {sizes.due}")

        some_due, ids = self.due_reads(f"sweep query, {due['cases']:,} due", expect=None)
        ids_read = results.add("sla.raw_read.ids", f"Raw indexed read of {SWEEP_LIMIT} ids, plain "
                               f"table of {site.plain_rows:,} rows", p50(ids), "ms",
                               tag=f"ID{SWEEP_LIMIT}")
        results.add("sla.due.some", f"Sweep query p50 (readmodels.due_cases), {due['cases']:,} cases "
                    f"due among {sizes.deadlines + due['rows']:,} deadlines", p50(some_due), "ms",
                    baseline=ids_read)
        self.sweep(due["cases"])

    def due_reads(self, label: str, expect: int | None) -> tuple[list[float], list[float]]:
        """The sweep's query, READS times, turn about with a raw read of as many rows as
        it looks at (none, or up to its limit)."""
        site = self.large
        progress = Progress(label)
        due, raw = [], []
        rows = 0 if expect == 0 else SWEEP_LIMIT
        found: list = []
        for n in range(READS + 3):
            now = datetime.now(UTC)
            with site.db.transaction() as cursor:
                t0 = time.perf_counter()
                found = readmodels.due_cases(cursor, now, limit=SWEEP_LIMIT)
                elapsed = time.perf_counter() - t0
            if expect is not None and len(found) != expect:
                raise AssertionError(f"{len(found)} cases due, expected {expect}")
            # Past the last id when none are due: the same index probe, finding nothing.
            start = site.random.randrange(0, site.plain_rows - rows) if rows else 2**62
            t0 = time.perf_counter()
            site.raw.execute("SELECT id FROM bench_rows WHERE id > %s ORDER BY id LIMIT %s",
                             (start, SWEEP_LIMIT)).fetchall()
            raw_elapsed = time.perf_counter() - t0
            if n >= 3:  # the first reads warm the plans and caches
                due.append(elapsed)
                raw.append(raw_elapsed)
            progress.update(f"{n + 1}/{READS + 3}")
        progress.done(f"p50 {p50(due):.2f} ms ({len(found)} cases), raw p50 {p50(raw):.2f} ms")
        return due, raw

    def sweep(self, due: int) -> None:
        """What routing's timer does, pass after pass until nothing is due; between passes
        the timers projection catches up, as it would in the service (not counted). After
        each case, the raw counterpart of its work, timed on its own."""
        site = self.large
        progress = Progress(f"sweeping {due:,} overdue cases")
        swept: set[UUID] = set()
        sweeping = following = raw_seconds = 0.0
        passes = loaded = 0
        while passes <= due:
            now = datetime.now(UTC)
            t0 = time.perf_counter()
            with site.db.transaction() as cursor:
                found = readmodels.due_cases(cursor, now, limit=SWEEP_LIMIT)
            sweeping += time.perf_counter() - t0
            for case_id in found:
                t0 = time.perf_counter()
                case = site.store.repository.get(case_id)
                case.check_deadlines(now, policies())
                site.store.record(case)
                sweeping += time.perf_counter() - t0
                swept.add(case_id)
                raw_seconds += site.raw_read_then_write()
            loaded += len(found)
            if not found:
                break
            passes += 1
            t0 = time.perf_counter()
            site.catch_up(readmodels.DEADLINE_TIMERS)
            following += time.perf_counter() - t0
            progress.update(f"{len(swept):,}/{due:,} cases, pass {passes}")
        site.catch_up(readmodels.OFFICE_QUEUE)
        rate, raw_rate = len(swept) / sweeping, loaded / raw_seconds
        progress.done(f"{len(swept):,} cases in {passes} passes: {rate:,.0f}/s; "
                      f"raw {raw_rate:,.0f}/s")
        breached = site.raw.execute("SELECT count(*) FROM routing_events WHERE topic LIKE %s",
                                    ("%.SlaBreached",)).fetchone()[0]
        if len(swept) != due or breached != due:
            self.results.failures.append(f"sweep: {len(swept)} cases swept, {breached} breaches "
                                         f"recorded; {due} were due")
        baseline = self.results.add("sla.raw_txn", "Raw read by key + 3-row insert transaction",
                                    raw_rate, "/s", tag="RW")
        self.results.add("sla.sweep", f"Deadline sweep of {due:,} overdue cases, cases/s "
                         "(load, check_deadlines, record)", rate, "/s", baseline=baseline)
        self.results.details["sla.sweep"] = {
            "cases": len(swept), "passes": passes, "cases_loaded": loaded,
            "sweep_seconds": round(sweeping, 3), "timers_projection_seconds": round(following, 3),
            "breaches_recorded": breached, "raw_seconds": round(raw_seconds, 3),
        }

    # -- 5. replay ---------------------------------------------------------------------
    def replay_large(self) -> None:
        """The replay over the large store, if the first one says it fits the budget."""
        head = self.large.head()
        if self.replays and self.replays[-1].value:
            first = self.replays[-1]
            predicted = head / first.value
            if predicted > REPLAY_BUDGET:
                self.results.notes.append(
                    f"The replay over the large store ({head:,} events) was left out: at the "
                    f"{first.value:,.0f} events/s of the replay over "
                    f"{self.results.details[first.key]['events']:,} events it would have taken "
                    f"about {predicted:.0f} s, more than the {REPLAY_BUDGET:.0f} s allowed.")
                return
        self.replay(self.large)

    def replay(self, site: Site) -> None:
        head = site.head()
        tag = short(head)
        progress = Progress(f"raw SELECT of {head:,} events")
        query = ("SELECT notification_id, originator_id, originator_version, topic, state"
                 " FROM routing_events WHERE notification_id > %s ORDER BY notification_id LIMIT %s")
        position = rows = 0
        start = time.perf_counter()
        with site.raw.cursor() as cursor:
            while batch := cursor.execute(query, (position, 1000)).fetchall():
                position, rows = batch[-1][0], rows + len(batch)
                progress.update(f"{rows:,}/{head:,} rows, "
                                f"{rows / (time.perf_counter() - start):,.0f}/s")
        raw_seconds = time.perf_counter() - start
        progress.done(f"{rows:,} rows in {raw_seconds:.1f} s, {rows / raw_seconds:,.0f}/s")

        progress = Progress(f"office queue rebuild over {head:,} events")
        replayed, last_batch = 0, 0.0
        start = time.perf_counter()

        def advance(n: int) -> None:
            nonlocal replayed, last_batch
            replayed += n
            last_batch = time.perf_counter()
            progress.update(f"{replayed:,}/{head:,} events, "
                            f"{replayed / (last_batch - start):,.0f}/s")

        outcome = rebuild(site.db, site.store, readmodels.OFFICE_QUEUE, swap=False, progress=advance)
        seconds = time.perf_counter() - start
        replay_seconds = (last_batch or time.perf_counter()) - start
        differing = sum(outcome.differences.values())
        progress.done(f"{outcome.events:,} events in {seconds:.1f} s "
                      f"({outcome.events / seconds:,.0f}/s), {differing} rows differ")
        if outcome.events != head or differing:
            self.results.failures.append(f"rebuild: {outcome.events} of {head} events replayed, "
                                         f"{differing} rows differ from the live office queue")
        baseline = self.results.add(f"replay.{tag}.raw_select", f"Raw SELECT of {rows:,} stored "
                                    "events, batches of 1,000", rows / raw_seconds, "/s",
                                    tag=f"SEL@{tag}")
        self.replays.append(self.results.add(
            f"replay.{tag}.rebuild", f"Office queue rebuild over {outcome.events:,} events, "
            f"events/s (shared.rebuild, swap=False; target at least {REPLAY_TARGET:,.0f})",
            outcome.events / seconds, "/s", baseline=baseline))
        self.results.details[f"replay.{tag}.rebuild"] = {
            "events": outcome.events, "raw_rows": rows, "raw_seconds": round(raw_seconds, 3),
            "rebuild_seconds": round(seconds, 3),
            "replay_seconds_before_comparison": round(replay_seconds, 3),
            "comparison_seconds": round(seconds - replay_seconds, 3),
            "rows_differing": outcome.differences,
        }

    # -- targets -----------------------------------------------------------------------
    def targets(self) -> None:
        checks = []

        def check(key: str, what: str, met: Callable[[Figure], bool],
                  shown: Callable[[Figure], str]) -> None:
            figure = self.results.find(key)
            if figure is not None:
                checks.append(f"{what} {shown(figure)} ({'met' if met(figure) else 'NOT met'})")

        for key, what in (("growth.append.p50.ratio", "append p50 growth"),
                          ("growth.append.p99.ratio", "append p99 growth"),
                          ("growth.read_queue.ratio", "office queue read growth")):
            check(key, f"{what} at most {GROWTH_TARGET}x:",
                  lambda f: f.ratio is not None and f.ratio <= GROWTH_TARGET,
                  lambda f: f"{f.ratio:.2f}x" if f.ratio is not None else "n/a")
        check("sla.due.none", f"sweep query with none due at most {DUE_TARGET_MS:g} ms:",
              lambda f: f.value <= DUE_TARGET_MS, lambda f: f"{f.value:.2f} ms")
        for replay in self.replays:
            check(replay.key, f"rebuild over {self.results.details[replay.key]['events']:,} "
                  f"events at least {REPLAY_TARGET:,.0f} events/s:",
                  lambda f: f.value >= REPLAY_TARGET, lambda f: f"{f.value:,.0f}/s")
        check("history.events", f"history of {HISTORY} events at most {HISTORY_TARGET_MS:g} ms:",
              lambda f: f.value <= HISTORY_TARGET_MS, lambda f: f"{f.value:.2f} ms")
        if checks:
            self.results.notes.append("Targets at scale: " + "; ".join(checks) + ".")


def at_scale(results: Results, seconds: float, factor: float | None = None) -> None:
    factor = scale_factor() if factor is None else factor
    sizes = Sizes.scaled(factor)
    phase(f"At scale: routing's store to {sizes.checkpoints[-1]:,} events (sizes x{factor:g})")
    results.details["at_scale.sizes"] = {
        "checkpoints": sizes.checkpoints, "watched_office_cases": sizes.watched,
        "big_office_cases": sizes.big_office, "deadlines": sizes.deadlines, "due": sizes.due,
    }
    with ExitStack() as stack:
        bench = AtScale(results, sizes, seconds, stack)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("growth", bench.growth), ("first replay", bench.first_replay),
            ("office of 10,000", bench.big_office), ("history", bench.history),
            ("deadline sweep", bench.deadlines), ("replay", bench.replay_large),
        ]
        for name, step in steps:
            # A step that fails leaves the others their figures, as the phases do.
            try:
                step()
            except Exception as error:
                traceback.print_exc()
                results.failures.append(f"at scale, {name}: {type(error).__name__}: {error}")
        bench.targets()
