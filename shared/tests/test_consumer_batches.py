"""A batch consumer's bookkeeping, without a broker or database: which messages of a
batch take effect, how a failing one is found, and when one acknowledgement may settle
many. (tests/test_consumer_batches.py runs the same through RabbitMQ and PostgreSQL.)"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from shared import consumer
from shared.consumer import NotYet, RawQueueConsumer, _each_once, _recorded_once


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
def pauses(monkeypatch) -> list[float]:
    """The pauses taken, instead of taken."""
    taken: list[float] = []
    monkeypatch.setattr(consumer.time, "sleep", taken.append)
    return taken


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


class Store:
    """A store that records a batch's events with its tracking rows in one transaction,
    refused whole when a row is there already, or when an aggregate of the batch changed
    meanwhile (`races`: how many more tries of a position collide with someone else)."""

    def __init__(self):
        self.tracking: set[tuple[str, int]] = set()
        self.recorded: list[int] = []
        self.transactions = 0
        self.races: dict[int, int] = {}

    def record(self, taken):
        self.transactions += 1
        keys = {(t.application_name, t.notification_id) for _, t in taken}
        raced = [event["position"] for event, _ in taken if self.races.get(event["position"])]
        for position in raced:
            self.races[position] -= 1
        if keys & self.tracking or raced:
            raise IntegrityError("duplicate key value violates unique constraint")
        self.tracking |= keys
        self.recorded += [event["position"] for event, _ in taken]

    # What the consumer asks of the service's database.
    def tracked_already(self, service, trackings):
        return {(t.application_name, t.notification_id) for t in trackings} & self.tracking

    def has_tracking(self, service, tracking):
        return (tracking.application_name, tracking.notification_id) in self.tracking


class Recording:
    def __init__(self):
        self.db = Store()
        self.routed: set[str] = set()  # the cases whose submission is recorded


def record(self, taken):
    """Records what the batch calls for, but not the events of cases not routed yet:
    those it returns, to wait."""
    waits, recorded = {}, []
    for event, tracking in taken:
        if event.get("poison"):
            raise ValueError("nothing can be made of it")
        if event.get("early") and event["case_id"] not in self.routed:
            waits[tracking] = "the case is not routed yet"
        else:
            recorded.append((event, tracking))
    self.db.record(recorded)
    return waits


def test_those_that_wait_are_left_out_and_the_rest_recorded_in_one_transaction(pauses):
    service, take = Recording(), _recorded_once("routing", record)
    batch = [taken(p) for p in range(1, 7)]
    batch[2] = taken(3, early=True)
    assert take(service, batch) == ["handled"] * 2 + ["waiting"] + ["handled"] * 3
    assert service.db.recorded == [1, 2, 4, 5, 6]
    assert service.db.transactions == 1
    assert ("routing", 3) not in service.db.tracking
    assert pauses == []  # the batch did something: the next is not held up

    service.routed.add(batch[2][0]["case_id"])
    assert take(service, [batch[2]]) == ["handled"]
    assert service.db.recorded == [1, 2, 4, 5, 6, 3]


def test_a_batch_in_which_every_message_waits_pauses_once(pauses):
    service, take = Recording(), _recorded_once("routing", record)
    batch = [taken(p, early=True) for p in range(1, 4)]
    assert take(service, batch) == ["waiting"] * 3
    assert pauses == [consumer.WAIT_PAUSE_SECONDS]
    assert service.db.recorded == []


def test_one_waiting_too_long_in_a_batch_is_dead_lettered_and_the_rest_recorded():
    service, take = Recording(), _recorded_once("routing", record)
    batch = [taken(1), taken(2, early=True), taken(3)]
    batch[1][0]["occurred_at"] -= timedelta(hours=1)
    assert take(service, batch) == ["handled", "dead-lettered", "handled"]
    assert service.db.recorded == [1, 3]


def test_a_batch_delivered_again_with_one_more_that_waits_records_nothing_twice():
    service, take = Recording(), _recorded_once("routing", record)
    batch = [taken(p) for p in range(1, 5)]
    assert take(service, batch) == ["handled"] * 4
    again = [*batch, taken(5, early=True), taken(6)]
    assert take(service, again) == ["handled"] * 4 + ["waiting", "handled"]
    assert service.db.recorded == [1, 2, 3, 4, 6]


def test_a_case_changed_meanwhile_is_tried_again_alone_not_dead_lettered():
    """An office's command recorded on a case of the batch at the same moment: not a
    redelivery (no tracking row is there), so the batch is split down to that message,
    which is decided again on the case as it is now."""
    service, take = Recording(), _recorded_once("routing", record)
    batch = [taken(p) for p in range(1, 9)]
    service.db.races[6] = 5  # the whole batch, its halves down to 6 alone, and 6 once more
    assert take(service, batch) == ["handled"] * 8
    assert sorted(service.db.recorded) == list(range(1, 9))
    assert service.db.races[6] == 0


def test_a_poison_in_a_recorded_batch_is_dead_lettered_and_the_rest_recorded_once():
    service, take = Recording(), _recorded_once("routing", record)
    batch = [taken(p) for p in range(1, 11)]
    batch[4] = taken(5, poison=True)
    batch[7] = taken(8, early=True)
    assert take(service, batch) == ["handled"] * 4 + ["dead-lettered"] + ["handled"] * 2 + [
        "waiting"] + ["handled"] * 2
    assert sorted(service.db.recorded) == [1, 2, 3, 4, 6, 7, 9, 10]


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
