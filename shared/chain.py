"""Tamper evidence: every stored event is linked to the one before it in its store.

A trigger on each `<store>_events` table adds, for every row inserted, a link in
`<store>_chain`: sha256 of the previous link's hash and the row's notification id,
originator id and version, topic and state. Being a trigger, it covers every writer,
whatever client inserts the row. The chain table is locked for each append, so links
follow one another even if a writer skipped eventsourcing's own table lock.

`verify` recomputes the chain in Python (not with the database's own function, which a
tamperer could change too) and names the first link that does not hold: an event
edited, deleted or inserted behind the trigger's back. Rewriting a whole store and its
chain from the first changed event onwards stays possible for whoever owns the
database; the head hash `verify` prints, kept somewhere else, exposes that."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg import sql

GENESIS = bytes(32)  # what the first event of a store is linked to


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


@dataclass(frozen=True)
class Verdict:
    store: str
    links: int  # how many links were checked
    head: str | None  # hex hash of the last link, to keep somewhere else
    broken_at: int | None = None  # notification id of the first link that does not hold
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def _walk(conn: psycopg.Connection, store: str) -> Iterator[tuple]:
    """Chain links and events side by side, in chain order; an event that has no link
    (inserted behind the trigger's back) comes last, a link whose event is gone keeps
    its place with the event's columns empty."""
    query = sql.SQL(
        "SELECT c.position, coalesce(c.notification_id, e.notification_id), c.hash,"
        " e.notification_id IS NOT NULL, e.originator_id, e.originator_version, e.topic, e.state"
        " FROM {chain} c FULL JOIN {events} e ON e.notification_id = c.notification_id"
        " ORDER BY c.position NULLS LAST, e.notification_id"
    ).format(chain=sql.Identifier(f"{store}_chain"), events=sql.Identifier(f"{store}_events"))
    with conn.transaction(), conn.cursor(name=f"verify_{store}") as cursor:
        cursor.itersize = 5000
        cursor.execute(query)
        yield from cursor


def verify(conn: psycopg.Connection, store: str) -> Verdict:
    if conn.execute("SELECT to_regclass(%s)", (f"{store}_events",)).fetchone()[0] is None:
        return Verdict(store, 0, None)  # nothing stored yet
    if conn.execute("SELECT to_regclass(%s)", (f"{store}_chain",)).fetchone()[0] is None:
        first = conn.execute(sql.SQL("SELECT min(notification_id) FROM {}")
                             .format(sql.Identifier(f"{store}_events"))).fetchone()[0]
        return Verdict(store, 0, None, first, "the store has no chain") if first else \
            Verdict(store, 0, None)
    previous, checked = GENESIS, 0
    for position, notification_id, stored, present, originator, version, topic, state in \
            _walk(conn, store):
        if position is None:
            return Verdict(store, checked, previous.hex(), notification_id,
                           "the event has no link: it was stored behind the chain's back")
        if not present:
            return Verdict(store, checked, previous.hex(), notification_id,
                           "the event was deleted")
        expected = link(previous, notification_id, originator, version, topic,
                        bytes(state) if state is not None else None)
        if bytes(stored) != expected:
            return Verdict(store, checked, previous.hex(), notification_id,
                           "the event or its link was altered")
        previous, checked = expected, checked + 1
    return Verdict(store, checked, previous.hex() if checked else None)
