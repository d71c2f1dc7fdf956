"""The office queue: every open case of an office, nearest deadline first.

A projection of routing's own events, kept in the same transaction as its position in
routing's log, so a rebuild from the events gives the same rows."""

from __future__ import annotations

from shared.store import Projection

DDL = (
    """CREATE TABLE IF NOT EXISTS routing_office_queue (
        case_id uuid PRIMARY KEY,
        tracking_code text NOT NULL,
        office_id text NOT NULL,
        status text NOT NULL,
        type text NOT NULL,
        category text NOT NULL,
        routed_at timestamptz NOT NULL,
        acknowledge_due timestamptz,
        resolve_due timestamptz NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS routing_office_queue_deadline "
    "ON routing_office_queue (office_id, resolve_due)",
)


def apply(cursor, event) -> None:
    if type(event).__name__ == "CaseRouted":
        cursor.execute(
            """INSERT INTO routing_office_queue (case_id, tracking_code, office_id, status,
                   type, category, routed_at, acknowledge_due, resolve_due)
               VALUES (%s, %s, %s, 'routed', %s, %s, %s, %s, %s)""",
            (event.originator_id, event.context["tracking_code"], event.office_id, event.type,
             event.category, event.timestamp, event.acknowledge_due, event.resolve_due),
        )


def read(cursor, office_id: str, limit: int) -> list[dict]:
    cursor.execute(
        """SELECT case_id, tracking_code, status, type, category, routed_at,
                  acknowledge_due, resolve_due
           FROM routing_office_queue WHERE office_id = %s
           ORDER BY resolve_due, case_id LIMIT %s""",
        (office_id, limit),
    )
    return cursor.fetchall()


OFFICE_QUEUE = Projection("routing.office_queue", DDL, apply)
