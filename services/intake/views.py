"""The citizen's case view: status, office and timeline, kept from the public events of
every service (intake's own arrive through the relay like everyone else's)."""

from __future__ import annotations

from shared.db import tracking_ddl
from shared.events import STATUS_AFTER

DDL = (
    tracking_ddl("intake"),
    """CREATE TABLE IF NOT EXISTS intake_case_view (
        case_id uuid PRIMARY KEY,
        status text NOT NULL,
        status_at timestamptz NOT NULL,
        office_id text
    )""",
    """CREATE TABLE IF NOT EXISTS intake_timeline (
        event_id uuid PRIMARY KEY,
        case_id uuid NOT NULL,
        event_type text NOT NULL,
        occurred_at timestamptz NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS intake_timeline_case ON intake_timeline (case_id, occurred_at)",
)


def apply(cursor, event: dict) -> None:
    """Events of different services may arrive in any order: the latest one that changes
    the status wins, by when it happened."""
    cursor.execute(
        "INSERT INTO intake_timeline (event_id, case_id, event_type, occurred_at) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (event["event_id"], event["case_id"], event["event_type"], event["occurred_at"]),
    )
    status = STATUS_AFTER.get(event["event_type"])
    if status is None:
        return
    cursor.execute(
        """INSERT INTO intake_case_view (case_id, status, status_at, office_id)
           VALUES (%(case_id)s, %(status)s, %(at)s, %(office)s)
           ON CONFLICT (case_id) DO UPDATE SET
             status = EXCLUDED.status, status_at = EXCLUDED.status_at,
             office_id = COALESCE(EXCLUDED.office_id, intake_case_view.office_id)
           WHERE intake_case_view.status_at <= EXCLUDED.status_at""",
        {"case_id": event["case_id"], "status": status, "at": event["occurred_at"],
         "office": event["office_id"]},
    )


def read(cursor, case_id) -> tuple[dict | None, list[dict]]:
    cursor.execute("SELECT status, office_id FROM intake_case_view WHERE case_id = %s", (case_id,))
    view = cursor.fetchone()
    cursor.execute(
        "SELECT event_type, occurred_at FROM intake_timeline WHERE case_id = %s "
        "ORDER BY occurred_at, event_type",
        (case_id,),
    )
    return view, cursor.fetchall()
