"""The case counts behind the reports: one row per case, kept from public events."""

from __future__ import annotations

from shared.db import tracking_ddl
from shared.events import STATUS_AFTER

DDL = (
    tracking_ddl("reporting"),
    """CREATE TABLE IF NOT EXISTS reporting_cases (
        case_id uuid PRIMARY KEY,
        type text,
        category text,
        province text NOT NULL,
        district text NOT NULL,
        commune text NOT NULL,
        office_id text,
        status text NOT NULL,
        status_at timestamptz NOT NULL,
        submitted_at timestamptz
    )""",
)


def apply(cursor, event: dict) -> None:
    status = STATUS_AFTER.get(event["event_type"])
    if status is None:
        return
    submitted = event["event_type"] == "CaseSubmitted"
    location = event["location"]
    cursor.execute(
        """INSERT INTO reporting_cases (case_id, type, category, province, district, commune,
               office_id, status, status_at, submitted_at)
           VALUES (%(case_id)s, %(type)s, %(category)s, %(province)s, %(district)s,
                   %(commune)s, %(office)s, %(status)s, %(at)s, %(submitted)s)
           ON CONFLICT (case_id) DO UPDATE SET
             type = COALESCE(EXCLUDED.type, reporting_cases.type),
             category = COALESCE(EXCLUDED.category, reporting_cases.category),
             submitted_at = COALESCE(EXCLUDED.submitted_at, reporting_cases.submitted_at),
             office_id = COALESCE(EXCLUDED.office_id, reporting_cases.office_id),
             status = CASE WHEN reporting_cases.status_at <= EXCLUDED.status_at
                           THEN EXCLUDED.status ELSE reporting_cases.status END,
             status_at = GREATEST(reporting_cases.status_at, EXCLUDED.status_at)""",
        {
            "case_id": event["case_id"],
            "type": event["data"].get("type") if submitted else None,
            "category": event["data"].get("category") if submitted else None,
            "province": location["province"],
            "district": location["district"],
            "commune": location["commune"],
            "office": event["office_id"],
            "status": status,
            "at": event["occurred_at"],
            "submitted": event["occurred_at"] if submitted else None,
        },
    )


def summary(cursor) -> dict:
    cursor.execute("SELECT count(*) AS n FROM reporting_cases WHERE submitted_at IS NOT NULL")
    total = cursor.fetchone()["n"]

    def grouped(column: str) -> dict[str, int]:
        cursor.execute(
            f"SELECT {column} AS key, count(*) AS n FROM reporting_cases "
            f"WHERE submitted_at IS NOT NULL GROUP BY {column} ORDER BY {column}"
        )
        return {row["key"]: row["n"] for row in cursor.fetchall()}

    return {
        "total": total,
        "by_type": grouped("type"),
        "by_category": grouped("category"),
        "by_status": grouped("status"),
        "by_province": grouped("province"),
    }
