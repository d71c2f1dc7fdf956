"""The hash chains' pure parts: links, the relay's check of a batch, checkpoints signed
and refused."""

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import checkpoint
from shared.chain import GENESIS, Head, RelayCheck, _check, link, row_link


@dataclass(frozen=True)
class Note:  # what a recorder hands the relay
    id: int
    originator_id: uuid.UUID
    originator_version: int
    topic: str
    state: bytes


class Links:
    """A cursor that answers RelayCheck's query from a list of (position, notification
    id, hash) links, as the chain table would."""

    def __init__(self, links):
        self.links = links

    def execute(self, query, params):
        self.ids = params[0]

    def fetchall(self):
        rows = []
        for i, (position, notification_id, hash_) in enumerate(self.links):
            if notification_id in self.ids:
                before = self.links[i - 1] if i else (None, None, None)
                rows.append((notification_id, position, hash_, before[0], before[2]))
        return rows


def chained(notes):
    previous, links = GENESIS, []
    for position, note in enumerate(notes, 1):
        previous = link(previous, note.id, note.originator_id, note.originator_version,
                        note.topic, note.state)
        links.append((position, note.id, previous))
    return links


NOTES = [Note(n, uuid.UUID(int=n), 1, "services.x:Case.Submitted", b'{"n": %d}' % n)
         for n in range(1, 6)]


def test_a_link_covers_every_column_of_the_event():
    base = link(GENESIS, 1, uuid.UUID(int=1), 1, "t", b"s")
    assert len(base) == 32
    assert len({base, link(GENESIS, 2, uuid.UUID(int=1), 1, "t", b"s"),
                link(GENESIS, 1, uuid.UUID(int=2), 1, "t", b"s"),
                link(GENESIS, 1, uuid.UUID(int=1), 2, "t", b"s"),
                link(GENESIS, 1, uuid.UUID(int=1), 1, "u", b"s"),
                link(GENESIS, 1, uuid.UUID(int=1), 1, "t", b"z"),
                link(bytes([1]) * 32, 1, uuid.UUID(int=1), 1, "t", b"s")}) == 7
    # The topic's length is hashed too, so the topic and state cannot trade bytes.
    assert link(GENESIS, 1, uuid.UUID(int=1), 1, "ab", b"c") != \
        link(GENESIS, 1, uuid.UUID(int=1), 1, "a", b"bc")
    assert row_link(GENESIS, "k", b"[1]") != row_link(GENESIS, "k", b"[2]")


def test_the_relay_publishes_a_batch_whose_links_hold():
    check = RelayCheck("intake")
    held, stop = check.holding(Links(chained(NOTES)), NOTES)
    assert held == NOTES and stop is None


def test_the_relay_stops_at_an_event_stored_behind_the_chains_back():
    links = chained(NOTES[:2])  # the third has no link; the fourth links to the second
    previous = links[-1][2]
    for position, note in enumerate(NOTES[3:], 3):
        previous = link(previous, note.id, note.originator_id, 1, note.topic, note.state)
        links.append((position, note.id, previous))
    held, stop = RelayCheck("intake").holding(Links(links), NOTES)
    assert held == NOTES[:2]
    assert stop.notification_id == 3 and "no link" in stop.reason
    assert stop.case_id == NOTES[2].originator_id
    # Once the row is gone, what follows is published: its link never included it.
    rest = [n for n in NOTES if n.id != 3]
    assert RelayCheck("intake").holding(Links(links), rest) == (rest, None)


def test_the_relay_stops_at_an_event_edited_after_it_was_linked():
    edited = [*NOTES[:3], Note(4, NOTES[3].originator_id, 1, NOTES[3].topic, b"forged"),
              NOTES[4]]
    held, stop = RelayCheck("intake").holding(Links(chained(NOTES)), edited)
    assert held == NOTES[:3] and stop.notification_id == 4 and "altered" in stop.reason


def test_a_published_link_changed_afterwards_stops_the_relay_at_the_next():
    links = chained(NOTES)
    check = RelayCheck("intake")
    held, _ = check.holding(Links(links), NOTES[:3])
    check.verified = check.checked  # as after the broker confirmed
    # The third link rewritten, and the fourth made to follow from it consistently.
    forged = bytes(32)
    links[2] = (3, 3, forged)
    links[3] = (4, 4, link(forged, 4, NOTES[3].originator_id, 1, NOTES[3].topic,
                           NOTES[3].state))
    held, stop = check.holding(Links(links), NOTES[3:])
    assert held == [] and stop.notification_id == 4 and "changed after" in stop.reason


def walk(links, notes, present=None):
    by_id = {n.id: n for n in notes}
    rows = []
    for position, notification_id, hash_ in links:
        note = by_id.get(notification_id)
        rows.append((position, notification_id, hash_, note is not None,
                     *((note.originator_id, 1, note.topic, note.state) if note else (None,) * 4)))
    return rows


def event_link(previous, key, content):
    originator, version, topic, state = content
    return link(previous, key, originator, version, topic, state)


def test_a_chain_must_pass_through_the_checkpoints_head():
    links = chained(NOTES)
    signed = Head("intake", 4, links[3][2].hex(), 4, datetime(2026, 12, 1, tzinfo=UTC))
    assert _check("intake", walk(links, NOTES), event_link, "event", "events", signed).intact
    # Cut short: the last two events and their links gone.
    cut = _check("intake", walk(links[:3], NOTES[:3]), event_link, "event", "events", signed)
    assert not cut.intact and "cut short" in cut.reason and "position 4" in cut.reason
    # Everything gone.
    empty = _check("intake", [], event_link, "event", "events", signed)
    assert not empty.intact and "cut short" in empty.reason
    # Rewritten consistently from the second event on: every link holds, the head does not.
    rewritten = [*NOTES[:1], Note(2, NOTES[1].originator_id, 1, NOTES[1].topic, b"other"),
                 *NOTES[2:]]
    again = _check("intake", walk(chained(rewritten), rewritten), event_link, "event",
                   "events", signed)
    assert not again.intact and "rewritten" in again.reason and again.broken_at == 4


def test_a_checkpoint_signed_with_the_deployments_key_reads_back():
    key = Ed25519PrivateKey.generate()
    made = {"kind": checkpoint.KIND, "made_at": "2026-12-01T00:00:00+00:00",
            "public_key": checkpoint.public_key_text(key.public_key()),
            "chains": [{"chain": "intake", "position": 4, "hash": "ab" * 32,
                        "notification_id": 4}]}
    made["signature"] = base64.b64encode(key.sign(checkpoint._signed_part(made))).decode()
    heads = checkpoint.read(made, key.public_key())
    assert heads == [Head("intake", 4, "ab" * 32, 4, datetime(2026, 12, 1, tzinfo=UTC))]

    with pytest.raises(checkpoint.BadCheckpoint, match="does not hold"):
        checkpoint.read(made, Ed25519PrivateKey.generate().public_key())
    edited = {**made, "chains": [{**made["chains"][0], "position": 3}]}
    with pytest.raises(checkpoint.BadCheckpoint, match="does not hold"):
        checkpoint.read(edited, key.public_key())
    for broken in ({}, {**made, "signature": "%%"}, {**made, "chains": [{}]}, []):
        with pytest.raises(checkpoint.BadCheckpoint):
            checkpoint.read(broken, key.public_key())


def test_keys_are_32_bytes_of_base64():
    assert checkpoint.private_key().public_key()  # the development default reads
    with pytest.raises(checkpoint.BadCheckpoint, match="32 bytes"):
        checkpoint.public_key("c2hvcnQ=")
    with pytest.raises(checkpoint.BadCheckpoint, match="32 bytes"):
        checkpoint.public_key("not base64!")
