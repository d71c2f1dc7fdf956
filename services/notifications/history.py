"""Notifications' part of a case's history, for reporting's audit (see shared/history.py):
the case's notices are streams of their own (each delivery, the case's audience), so
which streams are the case's is kept by a projection of this store's log,
`notifications_case_streams`, which `ourvoice audit verify` reads too to name the case
of a broken notice. Notifications know nothing of the case's state."""

from __future__ import annotations

from uuid import UUID

from services.notifications.application import Notifications
from shared.history import CaseHistory, entry
from shared.logs import stream_events
from shared.store import Projection

DDL = ("""CREATE TABLE IF NOT EXISTS notifications_case_streams (
              case_id uuid NOT NULL,
              stream_id uuid NOT NULL,
              PRIMARY KEY (case_id, stream_id))""",)


def case_of(domain_event) -> UUID | None:
    """The case an event is about: the case named in its context or fields (a delivery,
    an audience), the stream itself for a case's own events; None for the rest
    (webhooks)."""
    context = getattr(domain_event, "context", None) or {}
    named = context.get("case_id") or getattr(domain_event, "case_id", None)
    if named:
        return UUID(str(named))
    return domain_event.originator_id if context.get("tracking_code") else None


def apply_to_case_streams(writes, domain_event) -> None:
    case_id = case_of(domain_event)
    if case_id is not None:
        writes.execute("INSERT INTO notifications_case_streams (case_id, stream_id)"
                       " VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       (case_id, domain_event.originator_id))


# A stream's first event already names its case: the later ones are not even decoded.
CASE_STREAMS = Projection("notifications.case_streams", DDL, apply_to_case_streams,
                          takes=lambda notification: notification.originator_version == 1)


def case_history(cursor, case_id: str) -> list[dict]:
    """Every event of the case's streams in notifications' store, in log order."""
    case_id = UUID(str(case_id))
    cursor.execute("SELECT stream_id FROM notifications_case_streams WHERE case_id = %s",
                   (case_id,))
    # The case's own stream even before the index caught up with it.
    streams = {case_id, *(row["stream_id"] if isinstance(row, dict) else row[0]
                          for row in cursor.fetchall())}
    return [entry("notifications", position, domain_event, state={})
            for position, domain_event in stream_events(cursor, Notifications, streams)]


# Declared on the Service class, for the composition layer (see shared/history.py).
HISTORY = CaseHistory(Notifications, case_history, follows=(CASE_STREAMS,))
