"""Malformed, oversized and hostile messages on the exchange: every consumer dead-letters
them and goes on, and nothing else changes."""

import json
import pickle
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.config import SERVICES
from shared.topology import dead_letter_queue_name
from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.faults


def dead_letters(system, service):
    with system.broker() as connection:
        _, count, _ = connection.default_channel.queue_declare(
            dead_letter_queue_name(service), passive=True)
    return count


def envelope(**overrides):
    body = {
        "event_id": str(uuid.uuid4()), "event_type": "CaseSubmitted", "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "case_id": str(uuid.uuid4()),
        "tracking_code": "22222-22222", "sequence": 1, "office_id": None,
        "location": {"province": "12", "district": "1201", "commune": "120101"},
        "data": {"type": "complaint", "category": "water-supply", "language": "km",
                 "anonymous": True},
    }
    body.update(overrides)
    return body


HEADERS = {"ourvoice-source": "intake", "ourvoice-position": 10**12}

HOSTILE = {
    "not JSON": (b"{\"event_type\": ", "application/json", HEADERS),
    "a pickle": (pickle.dumps({"event_type": "CaseSubmitted"}), "application/x-python-serialize",
                 HEADERS),
    "oversized": (json.dumps(envelope(data={"type": "complaint", "category": "water-supply",
                                            "language": "km", "anonymous": True,
                                            "padding": "ទ" * 200_000})).encode(),
                  "application/json", HEADERS),
    "no source headers": (json.dumps(envelope()).encode(), "application/json", {}),
    "a forged position": (json.dumps(envelope()).encode(), "application/json",
                          {"ourvoice-source": "intake", "ourvoice-position": "1; DROP TABLE x"}),
    "an unknown event type": (json.dumps(envelope(event_type="CaseDeleted")).encode(),
                              "application/json", HEADERS),
    "SQL in the location": (json.dumps(envelope(location={
        "province": "12", "district": "1201", "commune": "1'; DROP TABLE routing_events;--"}))
        .encode(), "application/json", HEADERS),
    "an array": (b"[1, 2, 3]", "application/json", HEADERS),
}


def test_hostile_messages_are_dead_lettered_by_every_consumer_and_change_nothing(system):
    case = submit(system)
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s",
        (case["tracking_code"],)), what="the case routed")
    wait_until(system.settled, what="a quiet system")
    before = {service: dead_letters(system, service) for service in SERVICES}
    counts = ("SELECT (SELECT count(*) FROM routing_events) AS routing_events,"
              " (SELECT count(*) FROM intake_events) AS intake_events,"
              " (SELECT count(*) FROM routing_office_queue) AS queued,"
              " (SELECT count(*) FROM routing_tracking) AS routing_tracking")
    state_before = system.query(counts)

    for body, content_type, headers in HOSTILE.values():
        system.publish_raw("CaseSubmitted.12.1201", body, headers=headers,
                           content_type=content_type)

    for service in SERVICES:
        wait_until(lambda s=service: dead_letters(system, s) == before[s] + len(HOSTILE),
                   what=f"{len(HOSTILE)} dead letters for {service}")
    assert system.query(counts) == state_before
    for service in SERVICES:
        assert system.healthy(service)
    # And the consumers go on with real work.
    after = submit(system, complaint(description="after the hostile messages"))
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s",
        (after["tracking_code"],)), what="a real case routed afterwards")


def test_an_event_about_a_case_routing_never_had_is_dead_lettered_not_retried_forever(system):
    before = dead_letters(system, "routing")
    routed_before = system.scalar("SELECT count(*) FROM routing_events")
    orphan = envelope(event_type="CaseAppealed", data={}, sequence=3,
                      occurred_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat())
    system.publish_raw("CaseAppealed.12.1201", json.dumps(orphan).encode(), headers=HEADERS,
                       as_service="intake")
    wait_until(lambda: dead_letters(system, "routing") == before + 1,
               what="the orphaned appeal dead-lettered by routing")
    assert system.scalar("SELECT count(*) FROM routing_events") == routed_before
