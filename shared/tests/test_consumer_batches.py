"""A batch consumer's bookkeeping, without a broker or database: which messages of a
batch take effect, how a failing one is found, and when one acknowledgement may settle
many. (tests/test_consumer_batches.py runs the same through RabbitMQ and PostgreSQL.)"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
import pytest
from eventsourcing.persistence import Tracking

from shared import consumer
from shared.consumer import NotYet, RawQueueConsumer, _each_once


class Database:
    """Tracking rows and applied events, committed only when the block ends well."""

    def __init__(self):
        self.tracking: set[tuple[str, int]] = set()
        self.applied: list[tuple[str, dict]] = []
        self.transactions = 0
        self.outages = 0

    @contextmanager
    def tracked(self, service, trackings):
        self.transactions += 1
        if self.outages:
            self.outages -= 1
            raise psycopg.OperationalError("the database went away")
        keys = {(t.application_name, t.notification_id) for t in trackings}
        new = keys - self.tracking
        written: list[tuple[str, dict]] = []
        yield written, new
        self.tracking |= new
        self.applied += written


class Service:
    def __init__(self):
        self.db = Database()
        self.calls: list[list[int]] = []


def keep(self, cursor, pairs):
    self.calls.append([event["position"] for _, event in pairs])
    for source, event in pairs:
        if event.get("poison"):
            raise ValueError("a row the database refuses")
        if event.get("early"):
            raise NotYet("its predecessor has not been read yet")
        cursor.append((source, event))


def taken(position: int, source: str = "routing", **marks) -> tuple[dict, Tracking]:
    event = {"event_id": str(uuid.uuid4()), "event_type": "CaseAcknowledged",
             "case_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC),
             "position": position, **marks}
    return event, Tracking(application_name=source, notification_id=position)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(consumer.time, "sleep", lambda seconds: None)


def test_a_poison_in_the_middle_is_found_by_halves_and_the_rest_commit_once():
    service, take = Service(), _each_once("intake", keep)
    batch = [taken(p) for p in range(1, 33)]
    batch[13] = taken(14, poison=True)
    outcomes = take(service, batch)
    assert outcomes == ["handled"] * 13 + ["dead-lettered"] + ["handled"] * 18
    assert sorted(event["position"] for _, event in service.db.applied) == [
        p for p in range(1, 33) if p != 14]
    # The whole batch, then both halves of the failing half at each of the five levels
    # down to the poison alone: 1 + 2 * 5.
    assert service.db.transactions == 11
    assert ("routing", 14) not in service.db.tracking


def test_a_batch_delivered_again_changes_nothing():
    service, take = Service(), _each_once("reporting", keep)
    batch = [taken(p) for p in range(1, 11)]
    assert take(service, batch) == ["handled"] * 10
    applied = list(service.db.applied)
    assert take(service, batch[3:] + batch[:3]) == ["handled"] * 10
    assert service.db.applied == applied
    assert service.calls == [list(range(1, 11))]  # the second time, nothing to apply


def test_the_same_message_twice_in_a_batch_is_applied_once_and_in_store_order():
    service, take = Service(), _each_once("intake", keep)
    batch = [taken(5), taken(3, source="intake"), taken(2)]
    batch.append(batch[0])
    assert take(service, batch) == ["handled"] * 4
    assert [(source, event["position"]) for source, event in service.db.applied] == [
        ("intake", 3), ("routing", 2), ("routing", 5)]


def test_one_that_waits_is_put_back_alone_and_an_outage_is_waited_out():
    service, take = Service(), _each_once("intake", keep)
    service.db.outages = 2
    batch = [taken(1), taken(2, early=True), taken(3)]
    assert take(service, batch) == ["handled", "waiting", "handled"]
    assert sorted(event["position"] for _, event in service.db.applied) == [1, 3]


class Channel:
    connection = True

    def __init__(self):
        self.acks: list[tuple[int, bool]] = []


class Message:
    def __init__(self, channel: Channel, tag: int):
        self.channel, self.delivery_tag = channel, tag

    def ack(self, multiple=False):
        self.channel.acks.append((self.delivery_tag, multiple))


def queue_consumer(*delivered: Message) -> RawQueueConsumer:
    settling = RawQueueConsumer.__new__(RawQueueConsumer)
    settling.outstanding = {}
    for message in delivered:
        settling.outstanding.setdefault(message.channel, set()).add(message.delivery_tag)
    return settling


def test_one_acknowledgement_settles_a_batch_when_everything_before_it_is_settled():
    channel, other = Channel(), Channel()
    messages = [Message(channel, tag) for tag in (3, 4, 5)] + [Message(other, 1)]
    later = Message(channel, 6)
    settling = queue_consumer(*messages, later)
    settling.ack_together(messages)
    assert channel.acks == [(5, True)] and other.acks == [(1, True)]
    assert settling.outstanding == {channel: {6}}


def test_an_earlier_delivery_not_settled_means_acknowledging_one_by_one():
    channel = Channel()
    unsettled, batch = Message(channel, 2), [Message(channel, 3), Message(channel, 4)]
    settling = queue_consumer(unsettled, *batch)
    settling.ack_together(batch)
    assert channel.acks == [(3, False), (4, False)]
    assert settling.outstanding == {channel: {2}}
