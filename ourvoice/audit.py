"""`ourvoice audit history`, for auditors at a terminal: each service's part of the
case's history read from its store directly (the services need not be running), merged
by reporting."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ourvoice import registry
from services.reporting import application, audit
from shared.db import Database
from shared.follower import LogFollower
from shared.history import CaseHistory
from shared.logs import StoreLog


def _catch_up(db: Database, part: CaseHistory) -> None:
    """Bring what a part reads besides its store's events (notifications' index of a
    case's streams) up to the store's last event, for a history asked for while the
    service is not running."""
    if not part.follows:
        return
    store_log = StoreLog(db, part.store)
    for projection in part.follows:
        follower = LogFollower(f"projection:{projection.name}", db, store_log.recorder,
                               projection.handler(store_log))
        while follower.follow_once():
            pass


def parts(db: Database, case_id: str) -> dict[str, list[dict]]:
    """Each service's part of the case's history; none from a store never created (a
    service that never ran)."""
    declared = registry.histories()
    with db.transaction() as cursor:
        cursor.execute("SELECT store FROM unnest(%s::text[]) store"
                       " WHERE to_regclass(store || '_events') IS NOT NULL",
                       ([part.store.name for part in declared.values()],))
        present = {row["store"] for row in cursor.fetchall()}
    for part in declared.values():
        if part.store.name in present:
            _catch_up(db, part)
    with db.transaction() as cursor:
        return {name: part.read(cursor, case_id) if part.store.name in present else []
                for name, part in declared.items()}


def history(db: Database, tracking_code: str, as_of: datetime | None = None) -> dict | None:
    return application.case_history(db, tracking_code, lambda case_id: parts(db, case_id),
                                    as_of)


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
        found = history(db, args.tracking_code, as_of)
    finally:
        db.close()
    if found is None:
        print(f"no case {args.tracking_code}", file=sys.stderr)
        return 1
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json
          else audit.as_text(found, zone))
    return 0
