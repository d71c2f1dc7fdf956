"""The read models behind the reports, kept from the public events of every service.

Events reach reporting in any order: competing consumers, three stores relaying at their
own pace, redeliveries. So every column is merged in a way that does not depend on the
order events are applied in: the earliest of some instants, the latest of others (ties
broken by event id), facts only one event carries. A rebuild that replays the same
events in time order therefore gives exactly the rows the live model has.

- `reporting_cases`: one row per case: what it is, where, when it was submitted, first
  acknowledged and first resolved, the office it is at, its status;
- `reporting_office_cases`: one row per case and office it reached, with the deadlines
  it had there and whether each was met or breached (a breach is what routing recorded
  as SlaBreached: time is an event);
- `reporting_feedback`, `reporting_escalations`, `reporting_ombudsman`: one row per
  citizen's feedback, escalation and ombudsman outcome."""

from __future__ import annotations

import re
from collections.abc import Sequence

from shared.db import tracking_ddl
from shared.events import status_after
from shared.store import Subscriber

FINAL = ("closed", "withdrawn")
# Events about a case as such; notifications are streams of their own, and a reading
# of the case file changes nothing a report counts.
NOT_ABOUT_THE_CASE = ("NotificationSent", "NotificationFailed", "CaseFileOpened")

DDL = (
    tracking_ddl("reporting"),
    # The first version of the model had another shape and nothing else reads it.
    """DO $$ BEGIN
         IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                    AND table_name = 'reporting_cases' AND column_name = 'status_at'
                    AND NOT EXISTS (SELECT 1 FROM information_schema.columns
                                    WHERE table_schema = current_schema()
                                    AND table_name = 'reporting_cases'
                                    AND column_name = 'status_event')) THEN
           DROP TABLE reporting_cases;  -- `ourvoice projections rebuild reporting` refills it
         END IF;
       END $$""",
    """CREATE TABLE IF NOT EXISTS reporting_cases (
        case_id uuid PRIMARY KEY,
        province text NOT NULL,
        district text NOT NULL,
        commune text NOT NULL,
        type text,
        category text,
        channel text,
        evaluation_rating smallint,
        submitted_at timestamptz,
        first_office_id text,
        first_office_at timestamptz,
        first_office_event uuid,
        office_id text,
        office_at timestamptz,
        office_event uuid,
        status text,
        status_at timestamptz,
        status_event uuid,
        final_status text,
        final_at timestamptz,
        acknowledged_at timestamptz,
        resolved_at timestamptz
    )""",
    "CREATE INDEX IF NOT EXISTS reporting_cases_submitted ON reporting_cases (submitted_at)",
    # Set when an event of the case says it is sensitive (its category may be withheld).
    "ALTER TABLE reporting_cases ADD COLUMN IF NOT EXISTS sensitive boolean",
    """CREATE TABLE IF NOT EXISTS reporting_office_cases (
        case_id uuid NOT NULL,
        office_id text NOT NULL,
        arrived_at timestamptz,
        acknowledge_due timestamptz,
        resolve_due timestamptz,
        acknowledged_at timestamptz,
        resolved_at timestamptz,
        acknowledge_breached_at timestamptz,
        resolve_breached_at timestamptz,
        PRIMARY KEY (case_id, office_id)
    )""",
    """CREATE TABLE IF NOT EXISTS reporting_feedback (
        event_id uuid PRIMARY KEY,
        case_id uuid NOT NULL,
        office_id text,
        satisfied boolean NOT NULL,
        rating smallint,
        occurred_at timestamptz NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS reporting_escalations (
        event_id uuid PRIMARY KEY,
        case_id uuid NOT NULL,
        from_office_id text NOT NULL,
        office_id text NOT NULL,
        reason text NOT NULL,
        occurred_at timestamptz NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS reporting_ombudsman (
        event_id uuid PRIMARY KEY,
        case_id uuid NOT NULL,
        office_id text,
        outcome text NOT NULL,
        occurred_at timestamptz NOT NULL
    )""",
)


def _latest(column: str, at: str, event: str) -> str:
    """SET clauses keeping the value of the latest event (ties: the greater event id)."""
    newer = (f"EXCLUDED.{at} IS NOT NULL AND (c.{at} IS NULL OR "
             f"(EXCLUDED.{at}, EXCLUDED.{event}) > (c.{at}, c.{event}))")
    return ", ".join(f"{name} = CASE WHEN {newer} THEN EXCLUDED.{name} ELSE c.{name} END"
                     for name in (column, at, event))


def _earliest(column: str, at: str, event: str) -> str:
    older = (f"EXCLUDED.{at} IS NOT NULL AND (c.{at} IS NULL OR "
             f"(EXCLUDED.{at}, EXCLUDED.{event}) < (c.{at}, c.{event}))")
    return ", ".join(f"{name} = CASE WHEN {older} THEN EXCLUDED.{name} ELSE c.{name} END"
                     for name in (column, at, event))


CASE_UPSERT = f"""
INSERT INTO reporting_cases AS c (case_id, province, district, commune, type, category,
    channel, evaluation_rating, submitted_at, first_office_id, first_office_at,
    first_office_event, office_id, office_at, office_event, status, status_at, status_event,
    final_status, final_at, acknowledged_at, resolved_at, sensitive)
VALUES (%(case_id)s, %(province)s, %(district)s, %(commune)s, %(type)s, %(category)s,
    %(channel)s, %(evaluation_rating)s, %(submitted_at)s, %(first_office_id)s,
    %(first_office_at)s, %(first_office_event)s, %(office_id)s, %(office_at)s,
    %(office_event)s, %(status)s, %(status_at)s, %(status_event)s, %(final_status)s, %(final_at)s,
    %(acknowledged_at)s, %(resolved_at)s, %(sensitive)s)
ON CONFLICT (case_id) DO UPDATE SET
    sensitive = c.sensitive OR EXCLUDED.sensitive,
    type = COALESCE(c.type, EXCLUDED.type),
    category = COALESCE(c.category, EXCLUDED.category),
    channel = COALESCE(c.channel, EXCLUDED.channel),
    evaluation_rating = COALESCE(c.evaluation_rating, EXCLUDED.evaluation_rating),
    submitted_at = COALESCE(c.submitted_at, EXCLUDED.submitted_at),
    {_earliest("first_office_id", "first_office_at", "first_office_event")},
    {_latest("office_id", "office_at", "office_event")},
    {_latest("status", "status_at", "status_event")},
    final_status = CASE WHEN EXCLUDED.final_at IS NOT NULL AND (c.final_at IS NULL OR
        (EXCLUDED.final_at, EXCLUDED.final_status) < (c.final_at, c.final_status))
        THEN EXCLUDED.final_status ELSE c.final_status END,
    final_at = LEAST(c.final_at, EXCLUDED.final_at),
    acknowledged_at = LEAST(c.acknowledged_at, EXCLUDED.acknowledged_at),
    resolved_at = LEAST(c.resolved_at, EXCLUDED.resolved_at)
"""

# A case that comes back to an office keeps the deadlines of its first arrival there.
_FIRST_ARRIVAL = ("EXCLUDED.arrived_at IS NOT NULL AND "
                  "(o.arrived_at IS NULL OR EXCLUDED.arrived_at < o.arrived_at)")
OFFICE_UPSERT = f"""
INSERT INTO reporting_office_cases AS o (case_id, office_id, arrived_at, acknowledge_due,
    resolve_due, acknowledged_at, resolved_at, acknowledge_breached_at, resolve_breached_at)
VALUES (%(case_id)s, %(office_id)s, %(arrived_at)s, %(acknowledge_due)s, %(resolve_due)s,
    %(acknowledged_at)s, %(resolved_at)s, %(acknowledge_breached_at)s, %(resolve_breached_at)s)
ON CONFLICT (case_id, office_id) DO UPDATE SET
    acknowledge_due = CASE WHEN {_FIRST_ARRIVAL} THEN EXCLUDED.acknowledge_due
                           ELSE o.acknowledge_due END,
    resolve_due = CASE WHEN {_FIRST_ARRIVAL} THEN EXCLUDED.resolve_due ELSE o.resolve_due END,
    arrived_at = LEAST(o.arrived_at, EXCLUDED.arrived_at),
    acknowledged_at = LEAST(o.acknowledged_at, EXCLUDED.acknowledged_at),
    resolved_at = LEAST(o.resolved_at, EXCLUDED.resolved_at),
    acknowledge_breached_at = LEAST(o.acknowledge_breached_at, EXCLUDED.acknowledge_breached_at),
    resolve_breached_at = LEAST(o.resolve_breached_at, EXCLUDED.resolve_breached_at)
"""

FEEDBACK_INSERT = """
INSERT INTO reporting_feedback (event_id, case_id, office_id, satisfied, rating, occurred_at)
VALUES (%(event_id)s, %(case_id)s, %(office_id)s, %(satisfied)s, %(rating)s, %(occurred_at)s)
ON CONFLICT DO NOTHING"""

ESCALATION_INSERT = """
INSERT INTO reporting_escalations (event_id, case_id, from_office_id, office_id, reason,
    occurred_at)
VALUES (%(event_id)s, %(case_id)s, %(from_office_id)s, %(office_id)s, %(reason)s,
    %(occurred_at)s)
ON CONFLICT DO NOTHING"""

OMBUDSMAN_INSERT = """
INSERT INTO reporting_ombudsman (event_id, case_id, office_id, outcome, occurred_at)
VALUES (%(event_id)s, %(case_id)s, %(office_id)s, %(outcome)s, %(occurred_at)s)
ON CONFLICT DO NOTHING"""

ARRIVALS = ("CaseRouted", "CaseTransferred", "CaseEscalated")
CASE_COLUMNS = ("type", "category", "channel", "evaluation_rating", "submitted_at",
                "first_office_id", "first_office_at", "office_id", "office_at", "status",
                "status_at", "final_status", "final_at", "acknowledged_at", "resolved_at",
                "sensitive")
OFFICE_COLUMNS = ("arrived_at", "acknowledge_due", "resolve_due", "acknowledged_at",
                  "resolved_at", "acknowledge_breached_at", "resolve_breached_at")


def _submitted(data: dict, at) -> dict:
    return {"type": data["type"], "category": data.get("category"), "channel": data["channel"],
            "evaluation_rating": data.get("rating") if data["type"] == "evaluation" else None,
            "submitted_at": at}


def _arrived(data: dict, at) -> dict:
    return {"office_id": data["office_id"], "office_at": at}


# What each kind of event says of the case itself (its status aside: see status_after).
CASE_FACTS = {
    "CaseSubmitted": _submitted,
    "CaseRouted": lambda data, at: {**_arrived(data, at), "first_office_id": data["office_id"],
                                    "first_office_at": at},
    "CaseTransferred": _arrived,
    "CaseEscalated": _arrived,
    "CaseAcknowledged": lambda data, at: {"acknowledged_at": at},
    "CaseResolved": lambda data, at: {"resolved_at": at},
}


def _case_row(event: dict) -> dict:
    kind, data, at = event["event_type"], event["data"], event["occurred_at"]
    row = dict.fromkeys(CASE_COLUMNS)
    row.update(case_id=event["case_id"], **event["location"])
    row["sensitive"] = bool(event.get("sensitive") or data.get("sensitive"))
    if facts := CASE_FACTS.get(kind):
        row.update(facts(data, at))
    status = status_after(kind, data)
    if status in FINAL:
        row.update(final_status=status, final_at=at)
    elif status is not None:
        row.update(status=status, status_at=at)
    # The event is kept only beside the instant it breaks ties for.
    for name in ("first_office", "office", "status"):
        row[f"{name}_event"] = event["event_id"] if row[f"{name}_at"] else None
    return row


def _arrival(event: dict) -> dict:
    data = event["data"]
    return {"office_id": data["office_id"], "arrived_at": event["occurred_at"],
            "acknowledge_due": data.get("acknowledge_due"),
            "resolve_due": data.get("resolve_due")}


# What each kind of event says of the case at one office (the office it names or is at).
OFFICE_FACTS = {
    **dict.fromkeys(ARRIVALS, _arrival),
    "CaseAcknowledged": lambda e: {"office_id": e["office_id"],
                                   "acknowledged_at": e["occurred_at"]},
    "CaseResolved": lambda e: {"office_id": e["office_id"], "resolved_at": e["occurred_at"]},
    "SlaBreached": lambda e: {"office_id": e["office_id"],
                              f"{e['data']['deadline']}_breached_at": e["occurred_at"]},
}


def _office_row(event: dict) -> dict | None:
    facts = OFFICE_FACTS.get(event["event_type"])
    if facts is None:
        return None
    row = dict.fromkeys(OFFICE_COLUMNS)
    row.update(facts(event))
    if row["office_id"] is None:
        return None
    row["case_id"] = event["case_id"]
    return row


def _pick(a: dict, b: dict, at: str, key: str, newer: bool) -> dict:
    """The same choice as the SQL above: of two (instant, tie-breaker) the later (or
    earlier) one, an absent instant never winning."""
    if b[at] is None:
        return a
    if a[at] is None:
        return b
    later = (b[at], b[key]) > (a[at], a[key])
    return b if later == newer else a


def _sooner(a, b):
    """The earlier of two instants, an absent one never winning (as SQL's LEAST)."""
    if a is None:
        return b
    return a if b is None else min(a, b)


# (column, instant, tie-breaker, whether the later one wins) of the chosen values.
_CHOSEN = (("first_office_id", "first_office_at", "first_office_event", False),
           ("office_id", "office_at", "office_event", True),
           ("status", "status_at", "status_event", True),
           ("final_status", "final_at", "final_status", False))


def _merge_cases(a: dict, b: dict) -> dict:
    merged = dict(a)
    merged["sensitive"] = a["sensitive"] or b["sensitive"]
    for name in ("type", "category", "channel", "evaluation_rating", "submitted_at"):
        if a[name] is None:
            merged[name] = b[name]
    for column, at, key, newer in _CHOSEN:
        won = _pick(a, b, at, key, newer)
        merged[column], merged[at], merged[key] = won[column], won[at], won[key]
    merged["acknowledged_at"] = _sooner(a["acknowledged_at"], b["acknowledged_at"])
    merged["resolved_at"] = _sooner(a["resolved_at"], b["resolved_at"])
    return merged


def _merge_offices(a: dict, b: dict) -> dict:
    merged = dict(a)
    first = b if b["arrived_at"] is not None and (
        a["arrived_at"] is None or b["arrived_at"] < a["arrived_at"]) else a
    merged.update(acknowledge_due=first["acknowledge_due"], resolve_due=first["resolve_due"])
    for name in ("arrived_at", "acknowledged_at", "resolved_at", "acknowledge_breached_at",
                 "resolve_breached_at"):
        merged[name] = _sooner(a[name], b[name])
    return merged


# The events kept one row each, by table: the statement and the row's own columns.
def _feedback(event: dict) -> dict:
    return {"satisfied": event["data"]["satisfied"], "rating": event["data"].get("rating")}


def _escalation(event: dict) -> dict:
    data = event["data"]
    return {"office_id": data["office_id"], "from_office_id": data["from_office_id"],
            "reason": data["reason"]}


ONE_ROW_EACH = {
    "FeedbackReceived": (FEEDBACK_INSERT, _feedback),
    "CaseEscalated": (ESCALATION_INSERT, _escalation),
    "OmbudsmanFindingsRecorded": (OMBUDSMAN_INSERT, lambda event: {"outcome": "findings"}),
    "CaseClosed": (OMBUDSMAN_INSERT, lambda event: {"outcome": "closed"}),
}


def rows(batch: Sequence[tuple[str, dict]]) -> list[tuple[str, list[dict]]]:
    """The rows a batch of (source, envelope) pairs writes, by statement. The rows of one
    case are merged here first, by the same rules the statements merge them with in the
    table, so a batch (a rebuild replays thousands at once) writes each case once."""
    cases: dict = {}
    offices: dict = {}
    single: dict[str, list[dict]] = {FEEDBACK_INSERT: [], ESCALATION_INSERT: [],
                                     OMBUDSMAN_INSERT: []}
    for _source, event in batch:
        kind = event["event_type"]
        if kind in NOT_ABOUT_THE_CASE:
            continue
        row = _case_row(event)
        known = cases.get(row["case_id"])
        cases[row["case_id"]] = row if known is None else _merge_cases(known, row)
        if (office := _office_row(event)) is not None:
            where = (office["case_id"], office["office_id"])
            known = offices.get(where)
            offices[where] = office if known is None else _merge_offices(known, office)
        if kind in ONE_ROW_EACH:
            statement, columns = ONE_ROW_EACH[kind]
            single[statement].append({"event_id": event["event_id"], "case_id": event["case_id"],
                                      "office_id": event["office_id"],
                                      "occurred_at": event["occurred_at"], **columns(event)})
    return [(CASE_UPSERT, list(cases.values())), (OFFICE_UPSERT, list(offices.values())),
            *single.items()]


# From this many rows on, a statement's rows are copied into a table of the transaction's
# own and merged in with one INSERT ... SELECT: the server plans the statement once
# instead of once a row, which is most of what a rebuild's write costs. Below it (the live
# consumer, a message at a time) the few more round trips of a COPY would cost more.
BULK = 100
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_VALUES = re.compile(r"VALUES \((?:[^()]|\(\w+\))*\)")


def _bulk(cursor, statement: str, found: list[dict]) -> None:
    """The same statement, same merge rules, with its rows read from a staging table."""
    table = re.search(r"INSERT INTO (\w+)", statement).group(1)
    columns = _PLACEHOLDER.findall(statement)
    staging = f"staging_{table}"
    cursor.execute(f"CREATE TEMP TABLE {staging} (LIKE {table})")
    with cursor.copy(f"COPY {staging} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in found:
            copy.write_row([row[c] for c in columns])
    cursor.execute(_VALUES.sub(f"SELECT {', '.join(columns)} FROM {staging}", statement))
    cursor.execute(f"DROP TABLE {staging}")


def apply(cursor, batch: Sequence[tuple[str, dict]]) -> None:
    """Apply (source, envelope) pairs: each statement once, with all its rows."""
    for statement, found in rows(batch):
        if len(found) >= BULK:
            _bulk(cursor, statement, found)
        elif found:
            cursor.executemany(statement, found)


# The reports' tables, rebuilt together by `ourvoice projections rebuild reporting`.
READ_MODEL = Subscriber("reporting", "reporting", DDL, apply)
