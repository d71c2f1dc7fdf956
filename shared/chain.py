"""Tamper evidence: every stored event is linked to the one before it in its store.

A trigger on each `<store>_events` table adds, for every row inserted, a link in
`<store>_chain`: sha256 of the previous link's hash and the row's notification id,
originator id and version, topic and state. Being a trigger, it covers every writer,
whatever client inserts the row. The chain table is locked for each append, so links
follow one another even if a writer skipped eventsourcing's own table lock. Tables kept
outside the event stores but only ever appended to (principals, revocations) are
chained the same way, row by row (`RowChain`).

Three things keep the chains honest against whoever owns the database:
- the relay publishes an event only once its link holds (`RelayCheck`): a row stored
  behind the trigger's back is never published, and the relay stops at it, loudly;
- the relay records the link of the last event it published; a published event that
  the chain no longer has shows as a broken record;
- the chains' heads are signed with a key the database does not hold and published
  (shared/checkpoint.py), so a chain cut short or rewritten wholesale no longer
  contains a signed head.

`verify` recomputes a chain in Python (not with the database's own function, which a
tamperer could change too) and names the first link that does not hold, and, given a
checkpoint's head, that the chain still passes through it."""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

GENESIS = bytes(32)  # what the first event of a store is linked to

# What each store's relay last published (the link it verified before publishing), and
# where it stopped when a link did not hold: operators see it in `projections status`
# and `audit verify`.
RELAY_DDL = """CREATE TABLE IF NOT EXISTS ourvoice_relay_chain (
    store text PRIMARY KEY,
    notification_id bigint,
    hash bytea,
    stopped_at bigint,
    reason text,
    since timestamptz NOT NULL DEFAULT now()
)"""


def chain_ddl(store: str) -> list[sql.Composed]:
    """Tables, function and trigger of a store's chain; safe to run again."""
    names = {
        "events": sql.Identifier(f"{store}_events"),
        "chain": sql.Identifier(f"{store}_chain"),
        "append": sql.Identifier(f"{store}_chain_append"),
        "trigger": sql.Identifier(f"{store}_chain"),
    }
    return [
        sql.SQL("""CREATE TABLE IF NOT EXISTS {chain} (
            position bigserial PRIMARY KEY,
            notification_id bigint NOT NULL UNIQUE,
            hash bytea NOT NULL
        )""").format(**names),
        sql.SQL("""CREATE OR REPLACE FUNCTION {append}() RETURNS trigger
            LANGUAGE plpgsql AS $$
            DECLARE
                previous bytea;
                topic bytea := convert_to(NEW.topic, 'UTF8');
            BEGIN
                LOCK TABLE {chain} IN EXCLUSIVE MODE;
                SELECT hash INTO previous FROM {chain} ORDER BY position DESC LIMIT 1;
                INSERT INTO {chain} (notification_id, hash) VALUES (
                    NEW.notification_id,
                    sha256(coalesce(previous, {genesis}) || int8send(NEW.notification_id)
                           || uuid_send(NEW.originator_id) || int8send(NEW.originator_version)
                           || int4send(octet_length(topic)) || topic
                           || coalesce(NEW.state, ''::bytea)));
                RETURN NULL;
            END $$""").format(genesis=sql.Literal(GENESIS), **names),
        sql.SQL("""CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT ON {events}
            FOR EACH ROW EXECUTE FUNCTION {append}()""").format(**names),
    ]


def link(previous: bytes, notification_id: int, originator_id: UUID, originator_version: int,
         topic: str, state: bytes | None) -> bytes:
    """The same hash the trigger computes, so verification needs nothing of the database's."""
    topic_bytes = topic.encode()
    return hashlib.sha256(
        previous + struct.pack(">q", notification_id) + originator_id.bytes
        + struct.pack(">q", originator_version) + struct.pack(">i", len(topic_bytes))
        + topic_bytes + (state or b"")
    ).digest()


def ensure_chain(conn: psycopg.Connection, store: str) -> None:
    """Create the chain of a store; when it is first made, link the events stored before
    it, in log order. Never later: a chain emptied or cut short afterwards must show as
    broken, not be silently rebuilt. Runs under the migration lock (see open_store)."""
    with conn.transaction():
        new = conn.execute("SELECT to_regclass(%s) IS NULL", (f"{store}_chain",)).fetchone()[0]
        for statement in chain_ddl(store):
            conn.execute(statement)  # the trigger's DDL holds writers off until commit
        conn.execute(RELAY_DDL)
        if not new:
            return
        rows = conn.execute(sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM {} ORDER BY notification_id").format(sql.Identifier(f"{store}_events")))
        previous, links = GENESIS, []
        for notification_id, originator_id, version, topic, state in rows:
            previous = link(previous, notification_id, originator_id, version, topic,
                            bytes(state) if state is not None else None)
            links.append((notification_id, previous))
        with conn.cursor() as cursor:
            cursor.executemany(sql.SQL("INSERT INTO {} (notification_id, hash) VALUES (%s, %s)")
                               .format(sql.Identifier(f"{store}_chain")), links)




# -- tables that are only ever appended to ---------------------------------------------

@dataclass(frozen=True)
class RowChain:
    """A table whose rows are only ever inserted (never updated or deleted), chained as
    the events are: a trigger links each inserted row in `<table>_chain` by its key and
    the sha256 of its listed columns, as PostgreSQL writes them in JSON (in UTC). Only
    the listed columns count, so a column added later changes nothing already linked."""

    table: str
    key: str
    columns: tuple[str, ...]
    noun: str  # what a row is, for messages: "revocation"

    @property
    def name(self) -> str:
        return self.table

    @property
    def chain(self) -> str:
        return f"{self.table}_chain"

    def content(self, row: str) -> str:
        """The row's bytes as SQL: the listed columns of `row` (NEW or an alias)."""
        return (f"convert_to(json_build_array({', '.join(f'{row}.{c}' for c in self.columns)})"
                "::text, 'UTF8')")

    def ddl(self) -> tuple[str, ...]:
        """Table, function and trigger; the rows already there are linked only when the
        chain is first made (never later: a chain emptied afterwards must show)."""
        genesis = f"'\\x{GENESIS.hex()}'::bytea"
        step = ("sha256(previous || int4send(octet_length(convert_to({key}, 'UTF8')))"
                " || convert_to({key}, 'UTF8') || sha256({content}))")
        return (
            f"""DO $$ DECLARE previous bytea := {genesis}; r record; BEGIN
                IF to_regclass('{self.chain}') IS NOT NULL THEN RETURN; END IF;
                CREATE TABLE {self.chain} (
                    position bigserial PRIMARY KEY,
                    row_key text NOT NULL UNIQUE,
                    hash bytea NOT NULL);
                PERFORM set_config('TimeZone', 'UTC', true);
                FOR r IN SELECT t.{self.key}::text AS k, {self.content('t')} AS content
                         FROM {self.table} t ORDER BY 1 LOOP
                    previous := {step.format(key='r.k', content='r.content')};
                    INSERT INTO {self.chain} (row_key, hash) VALUES (r.k, previous);
                END LOOP;
            END $$""",
            f"""CREATE OR REPLACE FUNCTION {self.chain}_append() RETURNS trigger
                LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
                DECLARE previous bytea;
                BEGIN
                    LOCK TABLE {self.chain} IN EXCLUSIVE MODE;
                    SELECT coalesce((SELECT hash FROM {self.chain}
                                     ORDER BY position DESC LIMIT 1), {genesis}) INTO previous;
                    INSERT INTO {self.chain} (row_key, hash) VALUES (NEW.{self.key}::text,
                        {step.format(key=f'NEW.{self.key}::text', content=self.content('NEW'))});
                    RETURN NULL;
                END $$""",
            f"""CREATE OR REPLACE TRIGGER {self.chain} AFTER INSERT ON {self.table}
                FOR EACH ROW EXECUTE FUNCTION {self.chain}_append()""",
        )


def row_link(previous: bytes, key: str, content: bytes) -> bytes:
    """The hash a RowChain's trigger computes for a row."""
    key_bytes = key.encode()
    return hashlib.sha256(previous + struct.pack(">i", len(key_bytes)) + key_bytes
                          + hashlib.sha256(content).digest()).digest()


# -- verification ------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    """Where a chain ended: its last link's position and hash (and, in an event store,
    the notification id it links), as a checkpoint signs it."""

    chain: str
    position: int
    hash: str  # hex
    notification_id: int | None = None
    made_at: datetime | None = None  # when the checkpoint that holds it was made

    def as_json(self) -> dict:
        found = {"chain": self.chain, "position": self.position, "hash": self.hash}
        if self.notification_id is not None:
            found["notification_id"] = self.notification_id
        return found


@dataclass(frozen=True)
class Verdict:
    store: str  # the chain: a store's name, or a chained table's
    links: int  # how many links were checked
    head: str | None  # hex hash of the last link
    broken_at: int | str | None = None  # notification id (or row key) of the first break
    reason: str = ""
    case: str | None = None  # the tracking code of the case concerned, when it is known
    kind: str = "events"  # what the chain links: "events", or a table's rows

    @property
    def intact(self) -> bool:
        return self.broken_at is None and not self.reason

    @property
    def where(self) -> str:
        if self.broken_at is None:
            return "its end"
        return (f"notification {self.broken_at}" if self.kind == "events"
                else f"row {self.broken_at}")


def _exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def _walk(conn: psycopg.Connection, store: str) -> Iterator[tuple]:
    """Chain links and their events side by side, in chain order (a link whose event is
    gone has the event's columns empty); then the events that have no link (inserted
    behind the trigger's back). Two queries, each following an index, so a walk of a
    million links streams without a sort."""
    names = {"chain": sql.Identifier(f"{store}_chain"),
             "events": sql.Identifier(f"{store}_events")}
    linked = sql.SQL(
        "SELECT c.position, c.notification_id, c.hash, e.notification_id IS NOT NULL,"
        " e.originator_id, e.originator_version, e.topic, e.state"
        " FROM {chain} c LEFT JOIN {events} e ON e.notification_id = c.notification_id"
        " ORDER BY c.position").format(**names)
    unlinked = sql.SQL(
        "SELECT NULL, e.notification_id, NULL, true, e.originator_id, e.originator_version,"
        " e.topic, e.state FROM {events} e WHERE NOT EXISTS"
        " (SELECT 1 FROM {chain} c WHERE c.notification_id = e.notification_id)"
        " ORDER BY e.notification_id").format(**names)
    with conn.transaction():
        for n, query in enumerate((linked, unlinked)):
            with conn.cursor(name=f"verify_{store}_{n}") as cursor:
                cursor.itersize = 5000
                cursor.execute(query)
                yield from cursor


def _walk_rows(conn: psycopg.Connection, chain: RowChain) -> Iterator[tuple]:
    query = (f"SELECT c.position, coalesce(c.row_key, t.{chain.key}::text), c.hash,"
             f" t.{chain.key} IS NOT NULL, {chain.content('t')}"
             f" FROM {chain.chain} c FULL JOIN {chain.table} t ON t.{chain.key}::text = c.row_key"
             " ORDER BY c.position NULLS LAST, 2")
    with conn.transaction():
        conn.execute("SET LOCAL TimeZone = 'UTC'")  # as the trigger wrote the rows
        with conn.cursor(name=f"verify_{chain.table}") as cursor:
            cursor.itersize = 5000
            cursor.execute(query)
            yield from cursor


def _check(name: str, rows: Iterable[tuple], link_of, noun: str, kind: str,
           expected: Head | None) -> Verdict:
    """Walk a chain's (position, key, stored hash, present, *content) rows from the
    genesis; with `expected`, the chain must also pass through that signed head."""
    previous, checked, reached = GENESIS, 0, False

    def broken(key, reason: str) -> Verdict:
        return Verdict(name, checked, previous.hex() if checked else None, key, reason,
                       kind=kind)

    for position, key, stored, present, *content in rows:
        if position is None:
            return broken(key, f"the {noun} has no link: it was stored behind the chain's back")
        if not present:
            return broken(key, f"the {noun} was deleted")
        link_hash = link_of(previous, key, content)
        if bytes(stored) != link_hash:
            return broken(key, f"the {noun} or its link was altered")
        previous, checked = link_hash, checked + 1
        if expected is not None and position == expected.position:
            if link_hash.hex() != expected.hash:
                return broken(key, f"the chain was rewritten: its link at position {position} "
                                   f"is not the one the checkpoint of {_when(expected)} signed")
            reached = True
    if expected is not None and not reached:
        return Verdict(name, checked, previous.hex() if checked else None, None,
                       f"the chain was cut short: it no longer reaches position "
                       f"{expected.position}, its head at the checkpoint of {_when(expected)}"
                       + (f" (notification {expected.notification_id})"
                          if expected.notification_id is not None else "")
                       + f"; {checked:,} links remain", kind=kind)
    return Verdict(name, checked, previous.hex() if checked else None, kind=kind)


def _when(head: Head) -> str:
    return head.made_at.isoformat(timespec="seconds") if head.made_at else "an earlier time"


def _event_link(previous: bytes, notification_id: int, content: Sequence) -> bytes:
    originator, version, topic, state = content
    return link(previous, notification_id, originator, version, topic,
                bytes(state) if state is not None else None)


def verify(conn: psycopg.Connection, store: str, expected: Head | None = None) -> Verdict:
    """Whether a store's chain holds from the genesis, passes through `expected` (a
    checkpoint's head) and still has the last event its relay published."""
    if not _exists(conn, f"{store}_events"):
        return Verdict(store, 0, None, None,
                       "the store is gone" if expected is not None else "")
    if not _exists(conn, f"{store}_chain"):
        first = conn.execute(sql.SQL("SELECT min(notification_id) FROM {}")
                             .format(sql.Identifier(f"{store}_events"))).fetchone()[0]
        return Verdict(store, 0, None, first, "the store has no chain") if first else \
            Verdict(store, 0, None, None, "the store has no chain" if expected else "")
    verdict = _check(store, _walk(conn, store), _event_link, "event", "events", expected)
    if verdict.intact:
        verdict = _check_relay_record(conn, verdict)
    if verdict.broken_at is not None and verdict.case is None:
        verdict = Verdict(**{**verdict.__dict__, "case": case_of(conn, store, verdict.broken_at)})
    return verdict


def verify_rows(conn: psycopg.Connection, chain: RowChain, expected: Head | None = None
                ) -> Verdict:
    if not _exists(conn, chain.table) or not _exists(conn, chain.chain):
        return Verdict(chain.name, 0, None, None,
                       "the table or its chain is gone" if expected is not None else "",
                       kind="rows")

    def row_link_of(previous: bytes, key: str, content: Sequence) -> bytes:
        return row_link(previous, key, bytes(content[0]))

    return _check(chain.name, _walk_rows(conn, chain), row_link_of, chain.noun, "rows",
                  expected)


def _check_relay_record(conn: psycopg.Connection, verdict: Verdict) -> Verdict:
    """The last event the relay published must still be in the chain, with the link the
    relay checked: otherwise something published was taken out (or rewritten) since."""
    if not _exists(conn, "ourvoice_relay_chain"):
        return verdict
    record = conn.execute("SELECT notification_id, hash FROM ourvoice_relay_chain"
                          " WHERE store = %s AND notification_id IS NOT NULL",
                          (verdict.store,)).fetchone()
    if record is None:
        return verdict
    notification_id, published = record
    found = conn.execute(sql.SQL("SELECT hash FROM {} WHERE notification_id = %s")
                         .format(sql.Identifier(f"{verdict.store}_chain")),
                         (notification_id,)).fetchone()
    if found is not None and bytes(found[0]) == bytes(published):
        return verdict
    return Verdict(verdict.store, verdict.links, verdict.head, notification_id,
                   "the relay published this event, and the chain no longer has it"
                   if found is None else
                   "the relay published this event with another link: the chain was rewritten")


def case_of(conn: psycopg.Connection, store: str, notification_id: int | str) -> str | None:
    """The tracking code of the case a stored event belongs to, when intake knows it."""
    if not isinstance(notification_id, int) or not _exists(conn, "intake_cases"):
        return None
    found = conn.execute(sql.SQL(
        "SELECT i.tracking_code FROM {} e JOIN intake_cases i ON i.case_id = e.originator_id"
        " WHERE e.notification_id = %s").format(sql.Identifier(f"{store}_events")),
        (notification_id,)).fetchone()
    return found[0] if found else None


def heads(conn: psycopg.Connection, stores: Iterable[str], tables: Iterable[RowChain]
          ) -> list[Head]:
    """The last link of every chain that has one."""
    found = []
    with conn.transaction():
        for store in stores:
            if _exists(conn, f"{store}_chain"):
                row = conn.execute(sql.SQL("SELECT position, hash, notification_id FROM {}"
                                           " ORDER BY position DESC LIMIT 1")
                                   .format(sql.Identifier(f"{store}_chain"))).fetchone()
                if row:
                    found.append(Head(store, row[0], bytes(row[1]).hex(), row[2]))
        for chain in tables:
            if _exists(conn, chain.chain):
                row = conn.execute(f"SELECT position, hash FROM {chain.chain}"
                                   " ORDER BY position DESC LIMIT 1").fetchone()
                if row:
                    found.append(Head(chain.name, row[0], bytes(row[1]).hex()))
    return found


# -- the relay's side ----------------------------------------------------------------------

@dataclass(frozen=True)
class Stop:
    """Where a relay stopped: the first notification whose link does not hold."""

    notification_id: int
    reason: str
    case_id: UUID | None = None


class RelayCheck:
    """What a store's relay asks before publishing a batch: which leading notifications
    have a link that recomputes from the link before it. One link (and its predecessor,
    by an index) is read per event; the last link verified is kept in memory, so a link
    changed after it was published is noticed when the next one is checked."""

    def __init__(self, store: str):
        self.store = store
        self.verified: tuple[int, bytes] | None = None  # (chain position, hash)
        self.checked = self.verified  # the last link `holding` verified, not yet published
        self.stopped: Stop | None = None
        self.alarm_may_stand = True  # an alarm of an earlier run may still be recorded
        self.query = sql.SQL(
            "SELECT c.notification_id, c.position, c.hash, p.position AS previous_position,"
            " p.hash AS previous FROM {chain} c"
            " LEFT JOIN LATERAL (SELECT position, hash FROM {chain} WHERE position < c.position"
            "  ORDER BY position DESC LIMIT 1) p ON true"
            " WHERE c.notification_id = ANY(%s)").format(
                chain=sql.Identifier(f"{store}_chain"))

    def holding(self, cursor, notifications: Sequence) -> tuple[list, Stop | None]:
        """The notifications that may be published, in order, and where it stopped."""
        cursor.execute(self.query, ([n.id for n in notifications],))
        links = {}
        for row in cursor.fetchall():
            row = tuple(row.values()) if isinstance(row, dict) else tuple(row)
            links[row[0]] = row[1:]
        held, verified = [], self.verified
        self.checked = verified
        for n in notifications:
            found = links.get(n.id)
            if found is None:
                return held, Stop(n.id, "the event has no link: it was stored behind the "
                                  "chain's back", n.originator_id)
            position, stored, previous_position, previous = found
            previous = bytes(previous) if previous is not None else GENESIS
            if verified and verified[0] == previous_position and verified[1] != previous:
                return held, Stop(n.id, "the link before it changed after it was published",
                                  n.originator_id)
            expected = link(previous, n.id, n.originator_id, n.originator_version, n.topic,
                            n.state)
            if bytes(stored) != expected:
                return held, Stop(n.id, "the event or its link was altered", n.originator_id)
            held.append(n)
            verified = self.checked = (position, expected)
        return held, None

    def record(self, cursor, published: Sequence, stop: Stop | None) -> None:
        """Keep the last published link, and raise or clear the alarm, with the position
        the follower commits."""
        if published:
            self.verified = self.checked
        if stop is not None and stop != self.stopped:
            log.error("relay %s stopped at notification %s%s: %s; nothing after it is "
                      "published until its link holds", self.store, stop.notification_id,
                      f" (case {stop.case_id})" if stop.case_id else "", stop.reason)
        elif stop is None and self.stopped is not None:
            log.warning("relay %s goes on: notification %s no longer stops it", self.store,
                        self.stopped.notification_id)
        self.stopped = stop
        self.alarm_may_stand = stop is not None
        if not published and stop is None:
            return
        cursor.execute(
            "INSERT INTO ourvoice_relay_chain AS r (store, notification_id, hash, stopped_at,"
            " reason) VALUES (%(store)s, %(id)s, %(hash)s, %(stopped)s, %(reason)s)"
            " ON CONFLICT (store) DO UPDATE SET"
            " notification_id = coalesce(EXCLUDED.notification_id, r.notification_id),"
            " hash = coalesce(EXCLUDED.hash, r.hash),"
            " since = CASE WHEN r.stopped_at IS NOT DISTINCT FROM EXCLUDED.stopped_at"
            "   THEN r.since ELSE now() END,"
            " stopped_at = EXCLUDED.stopped_at, reason = EXCLUDED.reason",
            {"store": self.store, "id": published[-1].id if published else None,
             "hash": self.verified[1] if published else None,
             "stopped": stop.notification_id if stop else None,
             "reason": stop.reason if stop else None})


    def caught_up(self, cursor) -> None:
        """Nothing is left to publish, so nothing stops the relay (the row that did is
        gone): an alarm still recorded is cleared."""
        if not self.alarm_may_stand:
            return
        cursor.execute("UPDATE ourvoice_relay_chain SET stopped_at = NULL, reason = NULL,"
                       " since = now() WHERE store = %s AND stopped_at IS NOT NULL",
                       (self.store,))
        if self.stopped is not None:
            log.warning("relay %s goes on: notification %s no longer stops it", self.store,
                        self.stopped.notification_id)
        self.stopped, self.alarm_may_stand = None, False


def relay_alarms(cursor) -> list[tuple[str, int, str, datetime]]:
    """(store, notification id, reason, since) of every relay stopped by a broken link."""
    cursor.execute("SELECT to_regclass('ourvoice_relay_chain') IS NOT NULL AS found")
    row = cursor.fetchone()
    if not (row["found"] if isinstance(row, dict) else row[0]):
        return []
    cursor.execute("SELECT store, stopped_at, reason, since FROM ourvoice_relay_chain"
                   " WHERE stopped_at IS NOT NULL ORDER BY store")
    return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in cursor.fetchall()]
