"""`ourvoice audit history`, for auditors at a terminal: each service's part of the
case's history read from its store directly (the services need not be running), merged
by reporting."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.intake import history as intake
from services.notifications import history as notifications
from services.reporting import audit
from services.routing import history as routing
from shared import access
from shared.db import FOLLOWERS_DDL, Database
from shared.follower import LogFollower
from shared.logs import StoreLog
from shared.tracking import case_id_for, normalise_tracking_code

PARTS = {"intake": intake.case_history, "routing": routing.case_history,
         "notifications": notifications.case_history}


def _catch_up_notices(db: Database) -> None:
    """Bring notifications' index of a case's streams up to its last event, for a
    history asked for while the service is not running."""
    from services.notifications.application import Notifications

    projection = notifications.CASE_STREAMS
    db.migrate(FOLLOWERS_DDL, *projection.ddl)
    store_log = StoreLog(db, Notifications)
    follower = LogFollower(f"projection:{projection.name}", db, store_log.recorder,
                           projection.handler(store_log))
    while follower.follow_once():
        pass


def parts(db: Database, case_id: str) -> dict[str, list[dict]]:
    """Each service's part of the case's history; none from a store never created (a
    service that never ran)."""
    with db.transaction() as cursor:
        cursor.execute("SELECT store FROM unnest(%s::text[]) store"
                       " WHERE to_regclass(store || '_events') IS NOT NULL", (list(PARTS),))
        present = {row["store"] for row in cursor.fetchall()}
    if "notifications" in present:
        _catch_up_notices(db)
    with db.transaction() as cursor:
        return {store: part(cursor, case_id) if store in present else []
                for store, part in PARTS.items()}


def history(db: Database, tracking_code: str, as_of: datetime | None = None) -> dict | None:
    code = normalise_tracking_code(tracking_code)
    if code is None:
        return None
    case_id = str(case_id_for(code))
    found = parts(db, case_id)
    with db.transaction() as cursor:
        known = audit.principals(cursor, audit.references(found))
    return audit.merge(code, case_id, found, known, as_of)


def command(args) -> int:
    try:
        zone = ZoneInfo(args.zone)
    except (ValueError, ZoneInfoNotFoundError):
        print(f"--zone {args.zone!r}: give a time zone such as Asia/Phnom_Penh or UTC",
              file=sys.stderr)
        return 2
    as_of = None
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of)
        except ValueError:
            print(f"--as-of {args.as_of!r}: give a date and time such as 2026-11-28 10:00"
                  f" (in {zone.key}) or 2026-11-28T10:00+07:00", file=sys.stderr)
            return 2
        # A time without an offset is read as the auditor's clock shows it.
        as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=zone)
    db = Database(max_size=2)
    try:
        db.migrate(*access.DDL)
        found = history(db, args.tracking_code, as_of)
    finally:
        db.close()
    if found is None:
        print(f"no case {args.tracking_code}", file=sys.stderr)
        return 1
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json
          else audit.as_text(found, zone))
    return 0
