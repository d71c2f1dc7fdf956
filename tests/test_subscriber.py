"""The example office subscriber (plain kombu, examples/office_subscriber.py) as a process
of its own, on the queue and broker user `ourvoice subscribers add` made for one district:
it sees that district's events and no others."""

import json
import signal
import subprocess
import sys
import threading
import uuid
from contextlib import contextmanager

import pytest
from kombu import Queue

from shared.topology import EVENTS
from tests.system import ROOT, complaint, submit, wait_until

pytestmark = pytest.mark.e2e


@contextmanager
def subscriber(system, name, key):
    amqp_uri = system.add_subscriber(name, key)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "office_subscriber.py"),
         "--queue", f"ourvoice.subscriber.{name}", "--amqp", amqp_uri],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
    lines: list[dict] = []
    errors: list[str] = []
    readers = [threading.Thread(target=lambda: [lines.append(json.loads(line))
                                                for line in process.stdout], daemon=True),
               threading.Thread(target=lambda: [errors.append(line) for line in process.stderr],
                                daemon=True)]
    for reader in readers:
        reader.start()
    try:
        wait_until(lambda: any("listening" in e for e in errors) or process.poll() is not None,
                   what="the subscriber listening")
        assert process.poll() is None, "".join(errors)
        yield lines, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
        for reader in readers:
            reader.join(timeout=5)


def test_a_subscriber_bound_to_one_district_sees_only_that_district(system):
    with system.broker() as connection:
        everything = Queue("probe.subscriber", exchange=EVENTS, routing_key="#", durable=False)
        bound = everything(connection.default_channel)
        bound.declare()
        published, headers = [], {}

        def drain():
            while (message := bound.get(no_ack=True)) is not None:
                published.append(json.loads(message.body))
                headers[published[-1]["event_id"]] = message.headers
            return published

        with subscriber(system, f"test-1201-{uuid.uuid4().hex[:8]}", "*.12.1201") as (
                lines, process):
            here = submit(system, complaint(location={"commune": "120101"}))
            next_door = submit(system, complaint(location={"commune": "120201"}))
            far = submit(system, complaint(location={"commune": "170101"}))
            wait_until(lambda: {"CaseSubmitted", "CaseRouted"} <= {
                e["event_type"] for e in lines if e["tracking_code"] == here["tracking_code"]},
                what="the district's events at the subscriber")
            wait_until(lambda: {e["tracking_code"] for e in drain()
                                if e["event_type"] == "CaseRouted"}
                       >= {next_door["tracking_code"], far["tracking_code"]},
                       what="the other districts' events published")
            # A copy of an event already delivered (as a relay may publish after a crash).
            copy = next(e for e in published if e["tracking_code"] == here["tracking_code"]
                        and e["event_type"] == "CaseSubmitted")
            system.publish_raw("CaseSubmitted.12.1201", json.dumps(copy).encode(),
                               headers=headers[copy["event_id"]], as_service="intake")
            wait_until(lambda: drain() and True, what="drained")
            assert process.poll() is None
        assert process.returncode == 0, "it stops cleanly on SIGTERM"
        bound.delete()

    assert lines, "the subscriber printed the events it received"
    assert {e["location"]["district"] for e in lines} == {"1201"}
    assert all(e["routing_key"].endswith(".12.1201") for e in lines)
    assert not {next_door["tracking_code"], far["tracking_code"]} & {
        e["tracking_code"] for e in lines}
    ids = [e["event_id"] for e in lines]
    assert len(ids) == len(set(ids)), "each event once"
    district_events = {e["event_id"] for e in published if e["location"]["district"] == "1201"
                       and e["tracking_code"] == here["tracking_code"]}
    assert district_events <= set(ids), "every event of the district"


def queue_bindings(system, queue: str) -> set[str]:
    rows = json.loads(subprocess.run(
        ["rabbitmqctl", "-q", "list_bindings", "-p", system.vhost, "source_name",
         "destination_name", "routing_key", "--formatter", "json"],
        capture_output=True, text=True, check=True, timeout=60).stdout)
    return {r["routing_key"] for r in rows if r["destination_name"] == queue and r["source_name"]}


def test_notifications_outcomes_go_to_office_systems_and_to_no_service_queue(system):
    from shared.events import EVENT_TYPES
    from shared.topology import EVENTS, SUBSCRIPTIONS, queue_name

    for service in ("intake", "notifications", "reporting"):
        keys = queue_bindings(system, queue_name(service))
        assert "#" not in keys and "NotificationSent.#" not in keys
        assert "NotificationFailed.#" not in keys and "CaseSubmitted.#" in keys
    assert "CaseFileOpened.#" in queue_bindings(system, queue_name("intake")), \
        "the citizen's timeline shows the readings of the case file"
    # Every other event type reaches reporting: a new one too, without a change here.
    assert {key.split(".")[0] for key in SUBSCRIPTIONS["reporting"]} == set(EVENT_TYPES) - {
        "NotificationSent", "NotificationFailed", "CaseFileOpened"}
    # A queue set up by an earlier version, bound to all: setup takes that binding away.
    with system.broker() as connection:
        connection.default_channel.queue_bind(queue_name("reporting"), EVENTS.name, "#")
    assert "#" in queue_bindings(system, queue_name("reporting"))
    system.ourvoice("setup")
    assert "#" not in queue_bindings(system, queue_name("reporting"))
    assert "CaseSubmitted.#" in queue_bindings(system, queue_name("reporting"))
