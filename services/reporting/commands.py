"""`ourvoice audit history`, for auditors at a terminal."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def history(args) -> int:
    from services.reporting import audit, counts
    from shared import access
    from shared.db import Database

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
        db.migrate(*access.DDL, *counts.DDL)
        audit.catch_up(db)
        with db.transaction() as cursor:
            found = audit.history(cursor, args.tracking_code, as_of)
    finally:
        db.close()
    if found is None:
        print(f"no case {args.tracking_code}", file=sys.stderr)
        return 1
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json
          else audit.as_text(found, zone))
    return 0
