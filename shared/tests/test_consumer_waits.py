"""An event that waits for its predecessor is normal operation: requeued, logged once,
never as an error."""

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared import consumer
from shared.consumer import EventConsumer, NotYet, Orphaned, Waiting, _exactly_once


class Handler:
    """A service whose handler waits until told the predecessor has arrived."""

    db = None

    def __init__(self):
        self.arrived = False
        self.tries = 0

    def handle(self, event, tracking):
        self.tries += 1
        if not self.arrived:
            raise NotYet("the case's submission has not been read yet")
        return "handled"


def event(age=timedelta(0)):
    return {"event_id": str(uuid.uuid4()), "event_type": "CaseRouted",
            "occurred_at": datetime.now(UTC) - age}


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(consumer.time, "sleep", lambda seconds: None)


def test_a_wait_is_logged_once_at_info_without_a_traceback(caplog):
    service, waiting = Handler(), event()
    handle = _exactly_once("notifications", Handler.handle)
    with caplog.at_level(logging.DEBUG, logger="shared.consumer"):
        results = [handle(service, waiting, None) for _ in range(5)]
    assert all(isinstance(result, Waiting) for result in results)
    records = [r for r in caplog.records if r.name == "shared.consumer"]
    assert [r.levelno for r in records] == [logging.INFO] + [logging.DEBUG] * 4
    assert "waits: the case's submission has not been read yet" in records[0].getMessage()
    assert all(r.exc_info is None for r in records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    service.arrived = True
    assert handle(service, waiting, None) == "handled"
    assert waiting["event_id"] not in consumer._waiting


def test_a_wait_too_long_is_still_dead_lettered():
    handle = _exactly_once("notifications", Handler.handle)
    with pytest.raises(Orphaned):
        handle(Handler(), event(age=timedelta(hours=1)), None)


class Messages:
    def __init__(self):
        self.done = []

    def ack_message(self, message):
        self.done.append(("ack", message))

    def requeue_message(self, message):
        self.done.append(("requeue", message))

    def reject_message(self, message):
        self.done.append(("reject", message))


def test_a_waiting_message_goes_back_to_the_queue(monkeypatch):
    messages = Messages()
    monkeypatch.setattr(EventConsumer, "queue_consumer", messages)
    entry = EventConsumer.__new__(EventConsumer)
    entry.handle_message_processed("waits", Waiting("not yet"))
    entry.handle_message_processed("handled", "done")
    assert messages.done == [("requeue", "waits"), ("ack", "handled")]
