"""`ourvoice audit history` and `ourvoice audit verify`, for auditors at a terminal."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import psycopg


def history(args) -> int:
    from services.reporting import audit, counts
    from shared import access
    from shared.db import Database

    as_of = None
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of)
        except ValueError:
            print(f"--as-of {args.as_of!r}: give a date and time such as 2026-11-28T10:00+07:00",
                  file=sys.stderr)
            return 2
        as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
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
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json else audit.as_text(found))
    return 0


def verify(args) -> int:
    """Walk every store's chain; exit 0 when all hold, else 1 naming the first break."""
    from shared.chain import verify as verify_store
    from shared.config import Postgres
    from shared.logs import store_classes

    broken = False
    with psycopg.connect(Postgres.from_env().conninfo()) as conn:
        for store in store_classes():
            verdict = verify_store(conn, store)
            if verdict.intact:
                print(f"{store}: {verdict.links:,} events, chain intact"
                      + (f", head {verdict.head}" if verdict.head else ""))
            else:
                broken = True
                print(f"{store}: BROKEN at notification {verdict.broken_at}: {verdict.reason} "
                      f"({verdict.links:,} events before it hold)")
    return 1 if broken else 0


def command(args) -> int:
    return history(args) if args.action == "history" else verify(args)
