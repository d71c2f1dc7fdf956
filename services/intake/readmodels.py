"""Intake's read models.

- The **citizen's case view** (status, office, deadlines, the office's question, the
  resolution, the ombudsman's findings, a timeline) is kept from the public events of
  every service; intake's own arrive through the relay like everyone else's
  (`CASE_VIEW`, a subscriber fed by the broker).
- The **case list** (for Open311) and the **gender counts** (for reporting, over RPC) are
  kept from intake's own store, since what they hold (descriptions, gender) never travels.
  The case list keeps no description of a sensitive case, and the gender table is read
  only by `gender_counts`: neither ever reaches an office (`CASES`, a projection of
  intake's log).

The queries the entrypoints make of them are here too: SQL stays in this module and in
privacy.py (the keys)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.db import tracking_ddl
from shared.events import location_of, status_after
from shared.store import Projection, Subscriber, pipelined

DDL = (
    tracking_ddl("intake"),
    """CREATE TABLE IF NOT EXISTS intake_case_view (
        case_id uuid PRIMARY KEY,
        status text NOT NULL,
        status_at timestamptz NOT NULL,
        office_id text
    )""",
    # Added to the first version of the view; IF NOT EXISTS keeps older databases working.
    """ALTER TABLE intake_case_view
        ADD COLUMN IF NOT EXISTS acknowledge_due timestamptz,
        ADD COLUMN IF NOT EXISTS resolve_due timestamptz,
        ADD COLUMN IF NOT EXISTS deadlines_at timestamptz,
        ADD COLUMN IF NOT EXISTS question text,
        ADD COLUMN IF NOT EXISTS question_id uuid,
        ADD COLUMN IF NOT EXISTS question_at timestamptz,
        ADD COLUMN IF NOT EXISTS resolution text,
        ADD COLUMN IF NOT EXISTS resolution_id uuid,
        ADD COLUMN IF NOT EXISTS resolved_at timestamptz,
        ADD COLUMN IF NOT EXISTS findings text,
        ADD COLUMN IF NOT EXISTS recommendation text,
        ADD COLUMN IF NOT EXISTS findings_at timestamptz""",
    """CREATE TABLE IF NOT EXISTS intake_timeline (
        event_id uuid PRIMARY KEY,
        case_id uuid NOT NULL,
        event_type text NOT NULL,
        occurred_at timestamptz NOT NULL
    )""",
    """ALTER TABLE intake_timeline ADD COLUMN IF NOT EXISTS detail text,
        ADD COLUMN IF NOT EXISTS status text""",
    # Who opened the case file: a role and an office, never a name.
    """ALTER TABLE intake_timeline ADD COLUMN IF NOT EXISTS reader_role text,
        ADD COLUMN IF NOT EXISTS reader_office_id text""",
    "CREATE INDEX IF NOT EXISTS intake_timeline_case ON intake_timeline (case_id, occurred_at)",
)

NEVER = datetime.min.replace(tzinfo=UTC)

# What the citizen reads in the timeline, in the case's language. Notifications are the
# services' own bookkeeping and stay out of it.
TITLES: dict[str, tuple[str, str]] = {
    "CaseSubmitted": ("Your case was received", "ករណីរបស់អ្នកត្រូវបានទទួល"),
    "CaseRouted": ("Sent to the office that handles it", "បានបញ្ជូនទៅការិយាល័យទទួលបន្ទុក"),
    "CaseAcknowledged": ("The office has taken up your case",
                         "ការិយាល័យបានទទួលយកករណីរបស់អ្នក"),
    "InformationRequested": ("The office asks you for information",
                             "ការិយាល័យស្នើសុំព័ត៌មានបន្ថែមពីអ្នក"),
    "InformationProvided": ("You sent a message", "អ្នកបានផ្ញើសារ"),
    "CaseTransferred": ("Transferred to another office", "បានផ្ទេរទៅការិយាល័យផ្សេងទៀត"),
    "CaseResolved": ("The office resolved your case", "ការិយាល័យបានដោះស្រាយករណីរបស់អ្នក"),
    "FeedbackReceived": ("You gave feedback", "អ្នកបានផ្តល់មតិ"),
    "CaseAppealed": ("You appealed to the ombudsman", "អ្នកបានប្តឹងទៅអង្គភាពទទួលបណ្តឹង"),
    "SlaWarning": ("A deadline is near", "ជិតដល់ពេលកំណត់"),
    "SlaBreached": ("A deadline was missed", "ហួសពេលកំណត់"),
    "CaseEscalated": ("Taken up by the ombudsman", "អង្គភាពទទួលបណ្តឹងបានទទួលយកករណីនេះ"),
    "OmbudsmanFindingsRecorded": ("The ombudsman recorded findings",
                                  "អង្គភាពទទួលបណ្តឹងបានកត់ត្រាលទ្ធផលពិនិត្យ"),
    "CaseClosed": ("Your case is closed", "ករណីរបស់អ្នកត្រូវបានបិទ"),
    "CaseWithdrawn": ("You withdrew your case", "អ្នកបានដកករណីរបស់អ្នកវិញ"),
    "PersonalDataErased": ("Your personal data was erased",
                           "ទិន្នន័យផ្ទាល់ខ្លួនរបស់អ្នកត្រូវបានលុប"),
    "AttachmentAdded": ("A file was added to your case",
                        "ឯកសារមួយត្រូវបានបន្ថែមទៅក្នុងករណីរបស់អ្នក"),
    "CaseFileOpened": ("Your case file was opened by the office",
                       "ការិយាល័យបានបើកមើលឯកសារករណីរបស់អ្នក"),
}

# Events the view reads only for the deadlines they carry: the citizen's own message
# already tells in the timeline that the office's time runs again.
DEADLINES_ONLY = ("ClockRestarted",)

# Who opened the case file, as the citizen reads it: the reader's role and office.
READERS: dict[str, tuple[str, str]] = {
    "staff": ("Staff", "មន្ត្រី"),
    "ombudsman": ("The ombudsman", "អង្គភាពទទួលបណ្តឹង"),
    "auditor": ("An auditor", "សវនករ"),
    "admin": ("An administrator", "អ្នកគ្រប់គ្រងប្រព័ន្ធ"),
}

# Words the office addressed to the citizen, shown with the timeline entry.
DETAIL = {
    "InformationRequested": "question",
    "CaseResolved": "resolution",
    "OmbudsmanFindingsRecorded": "findings",
}


def title(event_type: str, language: str) -> str:
    english, khmer = TITLES[event_type]
    return khmer if language == "km" else english


def reader(role: str | None, office_name: str | None, language: str) -> str:
    """"Staff of Tonle Basak Commune Office", in the case's language."""
    english, khmer = READERS.get(role or "", (role or "", role or ""))
    if not office_name:
        return khmer if language == "km" else english
    return f"{khmer}នៃ {office_name}" if language == "km" else f"{english} of {office_name}"


# -- the citizen's case view, from every service's public events ----------------------
def _question(cursor, event: dict) -> None:
    cursor.execute(
        """UPDATE intake_case_view SET question = %(text)s, question_id = %(id)s,
             question_at = %(at)s
           WHERE case_id = %(case_id)s AND (question_at IS NULL OR question_at <= %(at)s)""",
        {"case_id": event["case_id"], "text": event["data"]["question"],
         "id": event["event_id"], "at": event["occurred_at"]},
    )


def _resolution(cursor, event: dict) -> None:
    cursor.execute(
        """UPDATE intake_case_view SET resolution = %(text)s, resolution_id = %(id)s,
             resolved_at = %(at)s
           WHERE case_id = %(case_id)s AND (resolved_at IS NULL OR resolved_at <= %(at)s)""",
        {"case_id": event["case_id"], "text": event["data"]["resolution"],
         "id": event["event_id"], "at": event["occurred_at"]},
    )


def _findings(cursor, event: dict) -> None:
    cursor.execute(
        """UPDATE intake_case_view SET findings = %(findings)s,
             recommendation = %(recommendation)s, findings_at = %(at)s
           WHERE case_id = %(case_id)s AND (findings_at IS NULL OR findings_at <= %(at)s)""",
        {"case_id": event["case_id"], "findings": event["data"]["findings"],
         "recommendation": event["data"]["recommendation"], "at": event["occurred_at"]},
    )


# The office's latest words to the citizen, each kept by the event that says them.
LATEST_WORDS = {
    "InformationRequested": _question,
    "CaseResolved": _resolution,
    "OmbudsmanFindingsRecorded": _findings,
}


def apply(cursor, event: dict) -> None:
    """Events of different services may arrive in any order: the latest one that changes
    the status wins, by when it happened, and nothing moves a case out of closed or
    withdrawn; each other part of the view likewise keeps its latest."""
    event_type = event["event_type"]
    if event_type not in TITLES and event_type not in DEADLINES_ONLY:
        return
    data = event["data"]
    status = status_after(event_type, data)
    detail_field = DETAIL.get(event_type)
    opened = event_type == "CaseFileOpened"
    if event_type in TITLES:
        cursor.execute(
            "INSERT INTO intake_timeline (event_id, case_id, event_type, occurred_at, detail,"
            " status, reader_role, reader_office_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (event["event_id"], event["case_id"], event_type, event["occurred_at"],
             data.get(detail_field) if detail_field else None, status,
             data.get("role") if opened else None, data.get("office_id") if opened else None),
        )
    at = event["occurred_at"]
    cursor.execute(
        """INSERT INTO intake_case_view (case_id, status, status_at, office_id)
           VALUES (%(case_id)s, %(status)s, %(at)s, %(office)s)
           ON CONFLICT (case_id) DO UPDATE SET
             status = EXCLUDED.status, status_at = EXCLUDED.status_at,
             office_id = COALESCE(EXCLUDED.office_id, intake_case_view.office_id)
           WHERE %(changes_status)s AND intake_case_view.status_at <= EXCLUDED.status_at
             AND intake_case_view.status NOT IN ('closed', 'withdrawn')""",
        # A row first made by an event that sets no status must not outrank the real ones.
        {"case_id": event["case_id"], "status": status or "submitted",
         "at": at if status else NEVER, "office": event["office_id"],
         "changes_status": status is not None},
    )
    if event_type == "CaseWithdrawn":
        # Nobody works to a deadline on a case its citizen withdrew.
        data = {**data, "acknowledge_due": None, "resolve_due": None}
    if "resolve_due" in data or "acknowledge_due" in data:
        cursor.execute(
            """UPDATE intake_case_view SET acknowledge_due = %(ack)s, resolve_due = %(resolve)s,
                 deadlines_at = %(at)s
               WHERE case_id = %(case_id)s AND (deadlines_at IS NULL OR deadlines_at <= %(at)s)""",
            {"case_id": event["case_id"], "ack": data.get("acknowledge_due"),
             "resolve": data.get("resolve_due"), "at": at},
        )
    words = LATEST_WORDS.get(event_type)
    if words is not None:
        words(cursor, event)


def apply_batch(cursor, batch) -> None:
    with pipelined(cursor) as writes:
        for _, event in batch:
            apply(writes, event)


# Fed by the broker with every store's public events; intake's tracking table records
# what it applied.
CASE_VIEW = Subscriber("intake.case_view", "intake", DDL, apply_batch)


def read(cursor, case_id) -> tuple[dict | None, list[dict]]:
    cursor.execute("SELECT * FROM intake_case_view WHERE case_id = %s", (case_id,))
    view = cursor.fetchone()
    cursor.execute(
        "SELECT event_id, event_type, occurred_at, detail, status, reader_role, reader_office_id"
        " FROM intake_timeline "
        "WHERE case_id = %s ORDER BY occurred_at, event_type",
        (case_id,),
    )
    return view, cursor.fetchall()


# -- the case list and gender counts, from intake's own events -----------------------
# Open311 clients list a category's requests, newest first (migration 2 adds it to
# databases made before it).
CATEGORY_INDEX = ("CREATE INDEX IF NOT EXISTS intake_cases_category "
                  "ON intake_cases (category, submitted_at)")
CASES_DDL = (
    """CREATE TABLE IF NOT EXISTS intake_cases (
        case_id uuid PRIMARY KEY,
        tracking_code text UNIQUE NOT NULL,
        type text NOT NULL,
        category text NOT NULL,
        commune text NOT NULL,
        channel text NOT NULL,
        sensitive boolean NOT NULL,
        public_description text,   -- NULL for sensitive cases
        submitted_at timestamptz NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS intake_cases_submitted ON intake_cases (submitted_at)",
    CATEGORY_INDEX,
    """CREATE TABLE IF NOT EXISTS intake_gender (
        case_id uuid PRIMARY KEY,
        gender text NOT NULL,
        type text NOT NULL,
        category text NOT NULL,
        commune text NOT NULL,
        submitted_at timestamptz NOT NULL
    )""",
)


def _submitted(cursor, event: Any) -> None:
    context = event.context
    sensitive = getattr(event, "sensitive", False)  # absent from the earliest cases
    cursor.execute(
        """INSERT INTO intake_cases (case_id, tracking_code, type, category, commune, channel,
             sensitive, public_description, submitted_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
        (event.originator_id, context["tracking_code"], event.type, event.category,
         context["commune"], event.channel, sensitive,
         None if sensitive else event.description, event.timestamp),
    )
    cursor.execute(
        """INSERT INTO intake_gender (case_id, gender, type, category, commune, submitted_at)
           VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
        (event.originator_id, event.gender, event.type, event.category, context["commune"],
         event.timestamp),
    )


# What of intake's own events the case list and the gender counts keep.
OWN_EVENTS = {"CaseSubmitted": _submitted}


def apply_own(cursor, domain_event: Any) -> None:
    keep = OWN_EVENTS.get(type(domain_event).__name__)
    if keep is not None:
        keep(cursor, domain_event)


CASES = Projection(name="intake-cases", ddl=CASES_DDL, apply=apply_own)

GENDER_FILTERS = ("from", "to", "province", "district", "commune", "office_id", "type",
                  "category")


def gender_counts(cursor, filters: dict[str, Any]) -> list[dict]:
    """Cases by gender, office, area, type and month of submission."""
    unknown = set(filters) - set(GENDER_FILTERS)
    if unknown:
        raise ValueError(f"unknown filters: {', '.join(sorted(unknown))}")
    where, params = ["TRUE"], {}
    if filters.get("from"):
        where.append("g.submitted_at >= %(from)s")
        params["from"] = datetime.fromisoformat(str(filters["from"]))
    if filters.get("to"):
        where.append("g.submitted_at < %(to)s")
        params["to"] = datetime.fromisoformat(str(filters["to"]))
    for area, length in (("province", 2), ("district", 4), ("commune", 6)):
        if filters.get(area):
            where.append(f"left(g.commune, {length}) = %({area})s")
            params[area] = str(filters[area])
    for column in ("type", "category"):
        if filters.get(column):
            where.append(f"g.{column} = %({column})s")
            params[column] = str(filters[column])
    if filters.get("office_id"):
        where.append("v.office_id = %(office_id)s")
        params["office_id"] = str(filters["office_id"])
    cursor.execute(
        f"""SELECT v.office_id, g.commune, g.type, g.category,
                   to_char(g.submitted_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
                   g.gender, count(*) AS cases
            FROM intake_gender g LEFT JOIN intake_case_view v USING (case_id)
            WHERE {' AND '.join(where)}
            GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 5, 1, 2, 3, 4, 6""",
        params,
    )
    return [
        {**{k: row[k] for k in ("office_id", "type", "category", "month", "gender")},
         **location_of(row["commune"]), "cases": row["cases"]}
        for row in cursor.fetchall()
    ]


# -- queries of the adapters -----------------------------------------------------------
def office_of(cursor, case_id) -> str | None:
    cursor.execute("SELECT office_id FROM intake_case_view WHERE case_id = %s", (case_id,))
    row = cursor.fetchone()
    return row["office_id"] if row else None


def status_of(cursor, case_id) -> dict | None:
    """The view's status and since when, None before any event of the case arrived."""
    cursor.execute("SELECT status, status_at FROM intake_case_view WHERE case_id = %s",
                   (case_id,))
    return cursor.fetchone()


def listed(cursor, case_ids: list) -> dict:
    """The case list's rows of these cases, by case id."""
    cursor.execute("SELECT case_id, sensitive, public_description FROM intake_cases "
                   "WHERE case_id = ANY(%s)", (case_ids,))
    return {row["case_id"]: row for row in cursor.fetchall()}


def requests(cursor, *, ids: list[str] | None, start: datetime, end: datetime | None,
             category: str | None, closed: bool | None, limit: int) -> list[dict]:
    """Open311's service requests, newest first, never a sensitive case: those of the
    tracking codes `ids` if given, else those submitted from `start` (to `end`), of a
    category, open or closed (None: both)."""
    where, params = ["NOT c.sensitive"], {}
    if ids is not None:
        where.append("c.tracking_code = ANY(%(ids)s)")
        params["ids"] = ids
    else:
        where.append("c.submitted_at >= %(start)s")
        params["start"] = start
        if end:
            where.append("c.submitted_at <= %(end)s")
            params["end"] = end
        if category:
            where.append("c.category = %(category)s")
            params["category"] = category
        if closed is not None:
            negate = "" if closed else "NOT"
            where.append(f"COALESCE(v.status, 'submitted') {negate} IN "
                         "('resolved', 'closed', 'withdrawn')")
    cursor.execute(
        f"""SELECT c.case_id, c.tracking_code, c.category, c.commune, c.sensitive,
                   c.public_description AS description, c.submitted_at,
                   v.status, v.status_at, v.office_id, v.resolve_due
            FROM intake_cases c LEFT JOIN intake_case_view v USING (case_id)
            WHERE {' AND '.join(where)}
            ORDER BY c.submitted_at DESC LIMIT {limit}""",
        params,
    )
    return cursor.fetchall()
