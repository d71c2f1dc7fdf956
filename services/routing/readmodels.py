"""Routing's read models, each a projection of routing's own events kept in the same
transaction as its position in routing's log, so a rebuild gives the same rows:

- the office queue: open cases of an office, nearest deadline first;
- the deadline timers: every running deadline with the next instant something is due
  (a warning or a breach), indexed so the sweep finds what is due without a scan;
- the directory amendments operators recorded;

and, from the office queue, the open cases by office kind for the operators' metrics.

Each projection's `apply` looks up the step for the event's type in its table."""

from __future__ import annotations

from datetime import timedelta

from psycopg.types.json import Jsonb

from shared import metrics
from shared.remembered import Remembered
from shared.store import Projection, of_names

# -- office queue ------------------------------------------------------------------

QUEUE_DDL = (
    """CREATE TABLE IF NOT EXISTS routing_office_queue (
        case_id uuid PRIMARY KEY,
        tracking_code text NOT NULL,
        office_id text NOT NULL,
        status text NOT NULL,
        type text NOT NULL,
        category text NOT NULL,
        routed_at timestamptz NOT NULL,
        acknowledge_due timestamptz,
        resolve_due timestamptz,
        next_due timestamptz,
        overdue boolean NOT NULL DEFAULT false,
        transfers integer NOT NULL DEFAULT 0
    )""",
    "ALTER TABLE routing_office_queue ADD COLUMN IF NOT EXISTS assignee text",
    # Open cases only: resolved ones pile up over the years (kept for an appeal) and a
    # queue read must not step over them. Sorted on SORT_KEY, so that a page starts
    # where the last one ended with an index range (a row comparison cannot order NULLs
    # last; 'infinity' can). One index per filter, each in the queue's order, so a
    # filtered page is a range too and never a walk over the office's other cases.
    "DROP INDEX IF EXISTS routing_office_queue_open",
    *(f"CREATE INDEX IF NOT EXISTS routing_office_queue_{name} ON routing_office_queue "
      f"(office_id, {column}COALESCE(next_due, 'infinity'), case_id) "
      f"WHERE status <> 'resolved'{condition}"
      for name, column, condition in (
          ("by_due", "", ""), ("by_status", "status, ", ""), ("by_type", "type, ", ""),
          ("by_category", "category, ", ""), ("by_assignee", "assignee, ", ""),
          ("overdue", "", " AND overdue"))),
)
SORT_KEY = "COALESCE(next_due, 'infinity')"
QUEUE_STATUSES = ("routed", "acknowledged", "waiting-for-citizen", "escalated")

# Events that end a case for good. A resolved case stays in the table, out of sight,
# because an appeal can bring it back to an ombudsman's queue.
FINISHED = ("CaseClosed", "WithdrawalRecorded")


def _dues(deadlines: dict) -> tuple:
    acknowledge = (deadlines.get("acknowledge") or {}).get("due")
    resolve = (deadlines.get("resolve") or {}).get("due")
    present = [d for d in (acknowledge, resolve) if d is not None]
    return acknowledge, resolve, min(present) if present else None


def _queue_routed(cursor, event) -> None:
    acknowledge, resolve, next_due = _dues(event.deadlines)
    cursor.execute(
        """INSERT INTO routing_office_queue (case_id, tracking_code, office_id, status, type,
               category, routed_at, acknowledge_due, resolve_due, next_due)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (event.originator_id, event.context["tracking_code"], event.office_id,
         "escalated" if "ombudsman" in event.office_id else "routed", event.type,
         event.category, event.timestamp, acknowledge, resolve, next_due),
    )


def _queue_moved(status: str):
    """The case has new deadlines (at a new office, or the clock runs again)."""

    def apply(cursor, event) -> None:
        name = type(event).__name__
        acknowledge, resolve, next_due = _dues(event.deadlines)
        now = status
        if name == "CaseTransferred" and "ombudsman" in event.office_id:
            now = "escalated"
        # A new office decides who works the case: its assignee goes with the move.
        cursor.execute(
            """UPDATE routing_office_queue SET office_id = COALESCE(%s, office_id), status = %s,
                   acknowledge_due = %s, resolve_due = %s, next_due = %s,
                   overdue = CASE WHEN %s = 'ClockRestarted' THEN overdue ELSE false END,
                   assignee = CASE WHEN %s = 'ClockRestarted' THEN assignee END,
                   transfers = COALESCE(%s, transfers)
               WHERE case_id = %s""",
            (getattr(event, "office_id", None), now, acknowledge, resolve, next_due, name,
             name, getattr(event, "transfers", None), event.originator_id),
        )

    return apply


def _statement(sql: str, *fields: str):
    """A projection step that runs one statement: the event's fields, then its case id."""

    def apply(cursor, event) -> None:
        cursor.execute(sql, (*(getattr(event, f) for f in fields), event.originator_id))

    return apply


_QUEUE_DELETE = _statement("DELETE FROM routing_office_queue WHERE case_id = %s")
QUEUE_STEPS = {
    "CaseRouted": _queue_routed,
    "CaseTransferred": _queue_moved("routed"),
    "CaseEscalated": _queue_moved("escalated"),
    "ClockRestarted": _queue_moved("acknowledged"),
    "CaseAssigned": _statement(
        "UPDATE routing_office_queue SET assignee = %s WHERE case_id = %s", "staff_id"),
    "CaseAcknowledged": _statement(
        """UPDATE routing_office_queue SET status = 'acknowledged', acknowledge_due = NULL,
               next_due = resolve_due WHERE case_id = %s"""),
    # The clock is stopped: no running deadline, so the case sorts after those that have.
    "InformationRequested": _statement(
        """UPDATE routing_office_queue SET status = 'waiting-for-citizen',
               acknowledge_due = NULL, resolve_due = NULL, next_due = NULL
           WHERE case_id = %s"""),
    "SlaBreached": _statement(
        "UPDATE routing_office_queue SET overdue = true WHERE case_id = %s"),
    "CaseResolved": _statement(
        """UPDATE routing_office_queue SET status = 'resolved', acknowledge_due = NULL,
               resolve_due = NULL, next_due = NULL WHERE case_id = %s"""),
    **{name: _QUEUE_DELETE for name in FINISHED},
}


def _step_by_type(steps: dict):
    """A projection's `apply`: the step for the event's type; other events change nothing."""

    def apply(cursor, event) -> None:
        step = steps.get(type(event).__name__)
        if step is not None:
            step(cursor, event)

    return apply


apply_to_queue = _step_by_type(QUEUE_STEPS)


def _where(office_id: str, filters: dict, now) -> tuple[list[str], dict]:
    """The queue's conditions for an office and the filters (status, overdue,
    due_within_hours, type, category, assignee), as SQL and parameters."""
    where = ["office_id = %(office_id)s", "status <> 'resolved'"]
    params = {"office_id": office_id}
    for column in ("status", "type", "category", "assignee"):
        if filters.get(column) is not None:
            where.append(f"{column} = %({column})s")
            params[column] = filters[column]
    if filters.get("overdue") is not None:
        where.append("overdue" if filters["overdue"] else "NOT overdue")
    if filters.get("due_within_hours") is not None:
        where.append(f"{SORT_KEY} <= %(due_by)s")
        params["due_by"] = now + timedelta(hours=filters["due_within_hours"])
    return where, params


def read_queue(cursor, office_id: str, limit: int, filters: dict | None = None,
               after: tuple | None = None, now=None) -> list[dict]:
    """A page of an office's open cases, nearest deadline first (those without a running
    deadline last), starting after `after` = (next_due, case id) of the last row seen."""
    where, params = _where(office_id, filters or {}, now)
    if after is not None:
        where.append(f"({SORT_KEY}, case_id) > "
                     f"(COALESCE(%(after_due)s::timestamptz, 'infinity'), %(after_id)s)")
        params.update(after_due=after[0], after_id=after[1])
    cursor.execute(
        f"""SELECT case_id, tracking_code, status, type, category, routed_at, acknowledge_due,
                   resolve_due, overdue, transfers, assignee, next_due
            FROM routing_office_queue WHERE {' AND '.join(where)}
            ORDER BY {SORT_KEY}, case_id LIMIT %(limit)s""",
        {**params, "limit": limit},
    )
    return cursor.fetchall()


def queue_counts(cursor, office_id: str, filters: dict, now) -> dict[str, int]:
    """How many of the office's open cases are in each status, under every filter but
    the status one (the tabs of a queue)."""
    where, params = _where(office_id, {**filters, "status": None}, now)
    cursor.execute(f"SELECT status, count(*) AS n FROM routing_office_queue "
                   f"WHERE {' AND '.join(where)} GROUP BY status", params)
    found = {row["status"]: row["n"] for row in cursor.fetchall()}
    return {status: found.get(status, 0) for status in QUEUE_STATUSES}


# The events a read model has no step for (a reading of the case file, a note, a warning
# for the queue) are passed over without being decoded.
OFFICE_QUEUE = Projection("routing.office_queue", QUEUE_DDL, apply_to_queue,
                          takes=of_names(QUEUE_STEPS))

# -- open cases, for the metrics -----------------------------------------------------

OPEN_CASES_QUERY = ("SELECT office_id, count(*) AS n FROM routing_office_queue "
                    "WHERE status <> 'resolved' GROUP BY office_id")
# The level of each kind of office, as the categories and the dashboard name them.
LEVELS = {"commune": "commune", "owso": "district", "district-ombudsman": "district",
          "owsu": "province", "provincial-ombudsman": "province",
          "national-ombudsman": "national"}


def office_kind(office_id: str | None) -> str:
    """`commune`, `owso`, `district-ombudsman`, ... : the office id without its area."""
    if not office_id:
        return "none"
    kind, _, area = office_id.rpartition("-")
    return kind if area.isdigit() else office_id


def open_cases(cursor) -> list[tuple[tuple[str, str], int]]:
    """((office kind, level), open cases) for every known kind (0 when none), then any
    other kind found, at level `unknown`."""
    counts: dict[str, int] = {}
    for row in cursor.execute(OPEN_CASES_QUERY):
        kind = office_kind(row["office_id"])
        counts[kind] = counts.get(kind, 0) + row["n"]
    found = [((kind, level), counts.pop(kind, 0)) for kind, level in LEVELS.items()]
    return found + [((kind, "unknown"), n) for kind, n in counts.items()]


def count_open_cases(db) -> None:
    """`ourvoice_open_cases` read from the office queue whenever the metrics are scraped."""

    def read():
        with db.transaction() as cursor:
            return open_cases(cursor)

    metrics.read_when_scraped("ourvoice_open_cases", "routing", read)


# -- deadline timers ---------------------------------------------------------------

TIMERS_DDL = (
    """CREATE TABLE IF NOT EXISTS routing_deadlines (
        case_id uuid NOT NULL,
        deadline text NOT NULL,
        due_at timestamptz NOT NULL,
        warn_at timestamptz NOT NULL,
        warned boolean NOT NULL,
        next_at timestamptz NOT NULL,
        PRIMARY KEY (case_id, deadline)
    )""",
    "CREATE INDEX IF NOT EXISTS routing_deadlines_next ON routing_deadlines (next_at)",
)


def _set_timers(cursor, case_id, deadlines: dict) -> None:
    cursor.execute("DELETE FROM routing_deadlines WHERE case_id = %s", (case_id,))
    for name, deadline in deadlines.items():
        warned = deadline.get("warned", False)
        cursor.execute(
            """INSERT INTO routing_deadlines (case_id, deadline, due_at, warn_at, warned, next_at)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            (case_id, name, deadline["due"], deadline["warn"], warned,
             deadline["due"] if warned else min(deadline["warn"], deadline["due"])),
        )


def _timers_set(cursor, event) -> None:
    _set_timers(cursor, event.originator_id, event.deadlines)


_TIMERS_DELETE = _statement("DELETE FROM routing_deadlines WHERE case_id = %s")
TIMER_STEPS = {
    **{name: _timers_set for name in ("CaseRouted", "CaseTransferred", "CaseEscalated",
                                      "ClockRestarted")},
    "CaseAcknowledged": _statement("DELETE FROM routing_deadlines WHERE case_id = %s "
                                   "AND deadline = 'acknowledge'"),
    "SlaWarning": _statement("""UPDATE routing_deadlines SET warned = true, next_at = due_at
                                WHERE deadline = %s AND case_id = %s""", "deadline"),
    "SlaBreached": _statement("DELETE FROM routing_deadlines WHERE deadline = %s "
                              "AND case_id = %s", "deadline"),
    **{name: _TIMERS_DELETE for name in ("InformationRequested", "CaseResolved", *FINISHED)},
}
apply_to_timers = _step_by_type(TIMER_STEPS)


def due_cases(cursor, now, limit: int) -> list:
    """Cases with a warning or breach due at `now`, soonest first; an index range scan."""
    cursor.execute(
        """SELECT DISTINCT case_id FROM (
               SELECT case_id FROM routing_deadlines WHERE next_at <= %s
               ORDER BY next_at LIMIT %s) due""",
        (now, limit),
    )
    return [row["case_id"] for row in cursor.fetchall()]


DEADLINE_TIMERS = Projection("routing.deadline_timers", TIMERS_DDL, apply_to_timers,
                             takes=of_names(TIMER_STEPS))

# -- directory amendments ----------------------------------------------------------

AMENDMENTS_DDL = (
    """CREATE TABLE IF NOT EXISTS routing_office_amendments (
        office_id text PRIMARY KEY,
        changes jsonb NOT NULL
    )""",
)


def _amended(cursor, event) -> None:
    cursor.execute(
        """INSERT INTO routing_office_amendments (office_id, changes) VALUES (%s, %s)
           ON CONFLICT (office_id) DO UPDATE
           SET changes = routing_office_amendments.changes || EXCLUDED.changes""",
        (event.office_id, Jsonb(event.changes)),
    )


AMENDMENT_STEPS = {"OfficeAmended": _amended}
apply_to_amendments = _step_by_type(AMENDMENT_STEPS)


def load_amendments(cursor) -> dict[str, dict]:
    cursor.execute("SELECT office_id, changes FROM routing_office_amendments")
    return {row["office_id"]: row["changes"] for row in cursor.fetchall()}


# The directory with its amendments, as every routed case needs it: read again when this
# process projected an amendment, and at least every REREAD_SECONDS (another instance's).
DIRECTORY: Remembered[dict] = Remembered()

OFFICE_AMENDMENTS = Projection("routing.office_amendments", AMENDMENTS_DDL, apply_to_amendments,
                               takes=of_names(AMENDMENT_STEPS),
                               changed=DIRECTORY.forget)

PROJECTIONS = (OFFICE_QUEUE, DEADLINE_TIMERS, OFFICE_AMENDMENTS)
