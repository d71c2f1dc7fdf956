"""`ourvoice audit verify`, `checkpoint` and `public-key`: the hash chains of every
store and chained table, for auditors at a terminal."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from uuid import UUID

import psycopg
from psycopg import sql


def _exists(conn, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def _case_of_event(conn, store: str, notification_id: int) -> UUID | None:
    """The case a stored event is about, as its stream tells: the case its events'
    context names (a delivery of a notice names its case), else the stream itself when
    it is a case's (intake and routing key a case by its id). A store that keeps an
    index of its case streams (notifications' `notifications_case_streams`) says it
    even of an event altered past reading; else the broken event first, then the other
    events of its stream."""
    from ourvoice import registry
    from shared.logs import COLUMNS, decode

    events = sql.Identifier(f"{store}_events")
    row = conn.execute(sql.SQL("SELECT originator_id FROM {} WHERE notification_id = %s")
                       .format(events), (notification_id,)).fetchone()
    store_class = registry.stores().get(store)
    if row is None or store_class is None:
        return None
    stream = row[0]
    index = f"{store}_case_streams"  # notifications' notices are streams of their own
    if _exists(conn, index) and (found := conn.execute(
            sql.SQL("SELECT case_id FROM {} WHERE stream_id = %s").format(sql.Identifier(index)),
            (stream,)).fetchone()):
        return found[0]
    rows = conn.execute(sql.SQL("SELECT " + COLUMNS + " FROM {} WHERE originator_id = %s"
                                " ORDER BY notification_id = %s DESC, notification_id")
                        .format(events), (stream, notification_id)).fetchall()
    for found in rows:
        try:
            domain_event = decode(store_class, tuple(found))
        except Exception:  # this one was altered past reading: its neighbours say it
            continue
        context = getattr(domain_event, "context", None) or {}
        named = context.get("case_id") or getattr(domain_event, "case_id", None)
        if named:
            return UUID(str(named))
        if context.get("tracking_code"):
            return stream
    if _exists(conn, "intake_cases") and conn.execute(
            "SELECT 1 FROM intake_cases WHERE case_id = %s", (stream,)).fetchone():
        return stream
    return None


def case_of_break(conn, verdict) -> str | None:
    """The case a broken link belongs to, for the auditor to look at: its tracking code
    (else its id). An event's case is what the event itself says; a citizen's token
    and its revocation are found through the token's case."""
    if verdict.case or verdict.broken_at is None:
        return verdict.case
    case_id = None
    if verdict.kind == "events" and isinstance(verdict.broken_at, int):
        case_id = _case_of_event(conn, verdict.store, verdict.broken_at)
    elif verdict.store in ("ourvoice_citizen_tokens", "ourvoice_citizen_token_revocations"):
        found = conn.execute("SELECT case_id FROM ourvoice_citizen_tokens WHERE token_hash = %s",
                             (str(verdict.broken_at),)).fetchone()
        case_id = found[0] if found else None
    if case_id is None:
        return None
    found = conn.execute("SELECT tracking_code FROM intake_cases WHERE case_id = %s",
                         (case_id,)).fetchone() if _exists(conn, "intake_cases") else None
    return found[0] if found else str(case_id)


def verify(args) -> int:
    """Walk every chain from the genesis; with --against, through a signed checkpoint's
    heads too. Exit 0 when all hold, 1 naming each break, 2 for a file not to be read."""
    from shared import checkpoint
    from shared.chain import relay_alarms, verify_rows
    from shared.chain import verify as verify_store
    from shared.config import Postgres

    expected = {}
    if args.against:
        try:
            with open(args.against, encoding="utf-8") as file:
                found = json.load(file)
        except (OSError, ValueError) as error:
            print(f"{args.against}: {error}", file=sys.stderr)
            return 2
        try:
            trusted = (checkpoint.public_key(args.public_key) if args.public_key
                       else checkpoint.private_key().public_key())
            signed = checkpoint.read(found, trusted)
        except checkpoint.BadCheckpoint as error:
            print(f"{args.against}: REFUSED: {error}")
            return 1
        print(f"checkpoint of {found['made_at']}: signature holds for key "
              f"{checkpoint.public_key_text(trusted)}")
        expected = {head.chain: head for head in signed}
    stores, tables = checkpoint.all_chains()
    broken = False
    with psycopg.connect(Postgres.from_env().conninfo()) as conn:
        verdicts = [verify_store(conn, store, expected.pop(store, None)) for store in stores]
        verdicts += [verify_rows(conn, table, expected.pop(table.name, None)) for table in tables]
        verdicts = [replace(v, case=case_of_break(conn, v)) for v in verdicts]
        with conn.cursor() as cursor:
            alarms = relay_alarms(cursor)
    for verdict in verdicts:
        unit = "events" if verdict.kind == "events" else "rows"
        if verdict.intact:
            print(f"{verdict.store}: {verdict.links:,} {unit}, chain intact"
                  + (f", head {verdict.head}" if verdict.head else "")
                  + (", through the checkpoint's head" if args.against and verdict.links
                     else ""))
            continue
        broken = True
        print(f"{verdict.store}: BROKEN at {verdict.where}: {verdict.reason}"
              + (f" (case {verdict.case})" if verdict.case else "")
              + f" ({verdict.links:,} links before it hold)")
    for name in expected:  # a chain the checkpoint signed that is not even known now
        broken = True
        print(f"{name}: BROKEN: the checkpoint has this chain and the database does not")
    for store, notification_id, reason, since in alarms:
        broken = True
        print(f"relay {store}: STOPPED at notification {notification_id} since "
              f"{since.isoformat(timespec='seconds')}: {reason}")
    return 1 if broken else 0


def make_checkpoint(args) -> int:
    """Sign the chains' heads, print the checkpoint, write it to --out and publish it."""
    from shared import checkpoint
    from shared.config import Postgres
    from shared.relay import ConfirmedPublisher
    from shared.settings import settings

    stores, tables = checkpoint.all_chains()
    with psycopg.connect(Postgres.from_env().conninfo()) as conn:
        made = checkpoint.make(conn, stores, tables)
    text = json.dumps(made, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as file:
            file.write(text + "\n")
    print(text)
    if not args.no_publish:
        publisher = ConfirmedPublisher(settings().amqp_uri, exchange=checkpoint.AUDIT)
        try:
            checkpoint.publish(publisher, made)
        finally:
            publisher.close()
    return 0


def public_key(args) -> int:
    from shared import checkpoint

    print(checkpoint.public_key_text(checkpoint.private_key().public_key()))
    return 0
