"""The consumers that take batches (intake's case view, reporting's figures, the notices
notifications records, the cases routing routes), through the real broker and database:
a poison message in the middle of a batch is dead-lettered while the rest commit; a
batch committed whose acknowledgement was lost is delivered again and changes nothing; a
case's events out of order in one batch give what they give in order.

The events are made up, for cases no service has, and go under their real keys. Routing
takes none of the kinds the tests of the other consumers publish but the submission and
the citizen's answer of a case's whole story: it is stopped for that test, and its queue
emptied before it starts again. Notifications is stopped (it would tell an office of
them, and its own events would join the batches)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import kombu
import psycopg
import pytest

from shared.events import routing_key
from shared.topology import EVENTS, dead_letter_queue_name, queue_name
from tests.system import act, wait_until

pytestmark = pytest.mark.faults

BATCHED = ("intake", "reporting")
OFFICE = "commune-120101"
LONG_AGO = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
# Far beyond any position the stores reach in a test.
POSITIONS = itertools.count(10**12)


def event(event_type: str, case_id, at: datetime, data: dict, **envelope) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "schema_version": 1,
            "occurred_at": at.isoformat(), "case_id": str(case_id),
            "tracking_code": "33333-33333", "sequence": 1, "office_id": OFFICE,
            "location": {"province": "12", "district": "1201", "commune": "120101"},
            "data": data, **envelope}


@contextmanager
def publisher(system):
    """`publish(source, body)` as the service owning `source` (its broker user, its
    stamp), each message confirmed before the next, so the queues hold them in the
    order published; returns the position it was given."""
    connections = {}

    def publish(source: str, body: dict, position: int | None = None) -> int:
        if source not in connections:
            connections[source] = kombu.Connection(system.service_amqp_uri(source),
                                                   transport_options={"confirm_publish": True})
        position = next(POSITIONS) if position is None else position
        producer = kombu.Producer(connections[source].default_channel, exchange=EVENTS,
                                  auto_declare=False)
        producer.publish(json.dumps(body).encode(),
                         routing_key=routing_key(body["event_type"], body["location"]),
                         content_type="application/json", content_encoding="utf-8",
                         headers={"ourvoice-source": source, "ourvoice-position": position},
                         delivery_mode=2, user_id=system.broker_users[source][0])
        return position

    try:
        yield publish
    finally:
        for connection in connections.values():
            connection.release()


def rabbitmq(command: str, *args: str) -> list[list[str]]:
    listing = ["--no-table-headers"] if command.startswith("list_") else []
    done = subprocess.run(["rabbitmqctl", "-q", command, *listing, *args],
                          check=True, capture_output=True, text=True, timeout=60)
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def queue(system, service: str) -> tuple[int, int]:
    """Messages ready in the service's queue, and those delivered to its consumer but not
    yet acknowledged (asked of the consumer's channel: the queue's own figures lag)."""
    with system.broker() as connection:
        _, ready, consumers = connection.default_channel.queue_declare(
            queue_name(service), passive=True)
    if not consumers:
        return ready, 0
    channels = {pid for name, pid in rabbitmq("list_consumers", "-p", system.vhost,
                                              "queue_name", "channel_pid")
                if name == queue_name(service)}
    return ready, sum(int(unacked) for pid, unacked in rabbitmq(
        "list_channels", "-p", system.vhost, "pid", "messages_unacknowledged")
        if pid in channels)


def dead_letters(system, service: str) -> int:
    with system.broker() as connection:
        _, count, _ = connection.default_channel.queue_declare(
            dead_letter_queue_name(service), passive=True)
    return count


def metric(system, service: str, name: str, **labels: str) -> float:
    text = system.call("GET", service, "/metrics").text
    total = 0.0
    for line in text.splitlines():
        found = re.match(rf"^{name}{{(.*)}} (\S+)$", line)
        if found and all(f'{k}="{v}"' in found.group(1) for k, v in labels.items()):
            total += float(found.group(2))
    return total


def tracked(system, service: str, positions) -> list[int]:
    return sorted(row["notification_id"] for row in system.query(
        f"SELECT notification_id FROM {service}_tracking WHERE notification_id = ANY(%s)",
        (list(positions),)))


def drained(system, service: str) -> bool:
    return queue(system, service) == (0, 0)


@pytest.fixture(autouse=True)
def without_notifications(system):
    if "notifications" in system.processes:
        system.stop("notifications")


def connection_lost_while_held(system, service: str) -> None:
    """Once the service's batch waits at a lock and the broker has delivered every
    message: its consumer connection dropped, and every message delivered again on the
    new one."""
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
        "AND wait_event_type = 'Lock'", (system.dbname,)), what=f"{service}'s batch held")
    wait_until(lambda: queue(system, service)[0] == 0, what="every message delivered")
    dropped = consumer_connection(system, service)
    rabbitmq("close_connection", dropped, "a connection lost for the test")
    wait_until(lambda: consumer_connection(system, service) != dropped
               and queue(system, service)[0] == 0,
               what="every message delivered again on a new connection")


def test_a_poison_message_in_the_middle_of_a_batch_is_dead_lettered_and_the_rest_commit(system):
    for service in BATCHED:
        system.stop(service)
    before = {service: dead_letters(system, service) for service in BATCHED}
    cases = [uuid.uuid4() for _ in range(40)]
    good = [event("CaseAcknowledged", case, LONG_AGO, {}) for case in cases]
    # Valid envelopes whose rows PostgreSQL refuses (text cannot hold NUL): intake writes
    # the question, reporting the reason of an escalation; each applies the other.
    asked, escalated = uuid.uuid4(), uuid.uuid4()
    poison_for_intake = event("InformationRequested", asked, LONG_AGO,
                              {"question": "which\x00street?"})
    poison_for_reporting = event("CaseEscalated", escalated, LONG_AGO, {
        "office_id": "district-ombudsman-1201", "from_office_id": OFFICE,
        "reason": "breach\x00"})
    with publisher(system) as publish:
        positions = [publish("routing", body) for body in good[:20]]
        poisoned_intake = publish("routing", poison_for_intake)
        poisoned_reporting = publish("routing", poison_for_reporting)
        positions += [publish("routing", body) for body in good[20:]]
    for service in BATCHED:
        assert queue(system, service) == (42, 0)
        system.start(service)

    for service in BATCHED:
        wait_until(lambda s=service: dead_letters(system, s) == before[s] + 1 and drained(system, s),
                   what=f"the poison dead-lettered by {service} and the rest settled")
    assert tracked(system, "intake", [*positions, poisoned_intake, poisoned_reporting]) == sorted(
        [*positions, poisoned_reporting])
    assert tracked(system, "reporting", [*positions, poisoned_intake, poisoned_reporting]) == sorted(
        [*positions, poisoned_intake])
    timeline = system.query("SELECT case_id, event_type FROM intake_timeline "
                            "WHERE case_id = ANY(%s)", ([*cases, asked, escalated],))
    assert sorted((row["case_id"], row["event_type"]) for row in timeline) == sorted(
        [(case, "CaseAcknowledged") for case in cases] + [(escalated, "CaseEscalated")])
    counted = system.query("SELECT case_id, status FROM reporting_cases WHERE case_id = ANY(%s)",
                           ([*cases, asked, escalated],))
    assert sorted((row["case_id"], row["status"]) for row in counted) == sorted(
        [(case, "acknowledged") for case in cases] + [(asked, "waiting-for-citizen")])
    # Few transactions: the 42 messages were taken in a handful of batches.
    for service in BATCHED:
        batch = {"queue": queue_name(service)}
        assert metric(system, service, "ourvoice_consumer_batch_messages_sum", **batch) == 42
        assert metric(system, service, "ourvoice_consumer_batch_messages_count", **batch) <= 4
        assert metric(system, service, "ourvoice_events_consumed_total",
                      outcome="dead-lettered") == 1


def consumer_connection(system, service: str) -> str:
    """The broker's id of the connection consuming the service's queue."""
    [channel] = [pid for name, pid in rabbitmq("list_consumers", "-p", system.vhost,
                                               "queue_name", "channel_pid")
                 if name == queue_name(service)]
    return {pid: connection for pid, connection in rabbitmq(
        "list_channels", "-p", system.vhost, "pid", "connection")}[channel]


def test_a_batch_committed_whose_acknowledgement_was_lost_changes_nothing_delivered_again(system):
    """The batch's transaction is held at the case view row of its last event while the
    broker drops the consumer's connection: the broker takes every message back and
    delivers them again to the new connection, then the held batch commits, and its
    acknowledgement has no channel left to go to, as after a crash between the two."""
    held = uuid.uuid4()
    with publisher(system) as publish:
        first = publish("routing", event("CaseRouted", held, LONG_AGO, {
            "office_id": OFFICE, "reason": "area"}))
        wait_until(lambda: tracked(system, "intake", [first]), what="the held case viewed")
        handled_before = metric(system, "intake", "ourvoice_events_consumed_total",
                                event_type="CaseAcknowledged", outcome="handled")
        dead_before = dead_letters(system, "intake")
        cases = [uuid.uuid4() for _ in range(30)]
        with psycopg.connect(f"host=127.0.0.1 port={system.pg_port} user=postgres "
                             f"dbname={system.dbname}") as holder:
            holder.execute("SELECT 1 FROM intake_case_view WHERE case_id = %s FOR UPDATE",
                           (held,))
            positions = [publish("routing", event("CaseAcknowledged", case, LONG_AGO, {}))
                         for case in [*cases, held]]
            connection_lost_while_held(system, "intake")
            holder.rollback()  # the held batch commits now

    wait_until(lambda: drained(system, "intake"), what="every message acknowledged")
    assert tracked(system, "intake", positions) == sorted(positions)
    rows = system.query("SELECT case_id, status FROM intake_case_view WHERE case_id = ANY(%s)",
                        ([*cases, held],))
    assert sorted((row["case_id"], row["status"]) for row in rows) == sorted(
        (case, "acknowledged") for case in [*cases, held])
    timeline = system.query("SELECT event_type, count(*) AS n FROM intake_timeline "
                            "WHERE case_id = ANY(%s) GROUP BY event_type", ([*cases, held],))
    assert {row["event_type"]: row["n"] for row in timeline} == {"CaseAcknowledged": 31,
                                                                "CaseRouted": 1}
    assert dead_letters(system, "intake") == dead_before
    # The messages the held batch had taken were handled twice: once with effect, once
    # (redelivered) finding their tracking rows.
    handled = metric(system, "intake", "ourvoice_events_consumed_total",
                     event_type="CaseAcknowledged", outcome="handled") - handled_before
    assert handled > 31


def test_notifications_record_a_batch_delivered_again_once(system):
    """Notifications records what a batch calls for in one append with all its tracking
    rows. The append is held at the store's table lock while the broker drops the
    consumer's connection: the broker delivers the batch again, the held one commits
    unacknowledged, and the copy, finding its rows, records nothing a second time."""
    system.start("notifications")
    cases = [uuid.uuid4() for _ in range(20)]
    dead_before = dead_letters(system, "notifications")
    handled_before = metric(system, "notifications", "ourvoice_events_consumed_total",
                            event_type="CaseRouted", outcome="handled")
    with publisher(system) as publish, psycopg.connect(
            f"host=127.0.0.1 port={system.pg_port} user=postgres "
            f"dbname={system.dbname}") as holder:
        holder.execute("LOCK TABLE notifications_events IN EXCLUSIVE MODE")
        positions = [publish("routing", event("CaseRouted", case, LONG_AGO, {
            "office_id": OFFICE, "reason": "area"})) for case in cases]
        connection_lost_while_held(system, "notifications")
        holder.rollback()  # the held batch commits now

    wait_until(lambda: drained(system, "notifications"), what="every message acknowledged")
    assert tracked(system, "notifications", positions) == sorted(positions)
    # Each case's citizen is due the routed message by email and SMS, each recorded once.
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM notifications_outbox WHERE case_id = ANY(%s) "
        "AND recipient_role = 'citizen'", (cases,)) == 2 * len(cases),
        what="the citizens' deliveries in the outbox")
    due = system.query("SELECT case_id, channel, count(*) AS n FROM notifications_events e "
                       "JOIN notifications_outbox o ON o.delivery_id = e.originator_id "
                       "WHERE o.case_id = ANY(%s) AND o.recipient_role = 'citizen' "
                       "AND e.originator_version = 1 GROUP BY case_id, channel", (cases,))
    assert sorted((row["case_id"], row["channel"], row["n"]) for row in due) == sorted(
        (case, channel, 1) for case in cases for channel in ("email", "sms"))
    assert dead_letters(system, "notifications") == dead_before
    # The held batch's messages were handled twice: once with effect, once (delivered
    # again) found done.
    handled = metric(system, "notifications", "ourvoice_events_consumed_total",
                     event_type="CaseRouted", outcome="handled") - handled_before
    assert handled > len(cases)


def story(case, at: datetime) -> list[tuple[str, dict]]:
    """A case's life, in the order it happened: (source, envelope)."""
    minutes = [at + timedelta(minutes=m) for m in range(6)]
    submitted = {"type": "complaint", "category": "water-supply", "language": "en",
                 "anonymous": True}
    routed = {"office_id": OFFICE, "reason": "area",
              "acknowledge_due": (at + timedelta(days=1)).isoformat(),
              "resolve_due": (at + timedelta(days=10)).isoformat()}
    return [
        ("intake", event("CaseSubmitted", case, minutes[0], submitted, office_id=None)),
        ("routing", event("CaseRouted", case, minutes[1], routed)),
        ("routing", event("CaseAcknowledged", case, minutes[2], {
            "acknowledge_due": None, "resolve_due": routed["resolve_due"]})),
        ("routing", event("InformationRequested", case, minutes[3], {"question": "Which street?"})),
        ("intake", event("InformationProvided", case, minutes[4], {"answers_request": True})),
        ("routing", event("CaseResolved", case, minutes[5], {"resolution": "The pipe is fixed."})),
    ]


def as_read(system, case) -> dict:
    """What intake's view and reporting's figures hold of the case, less its ids."""
    view = system.query("SELECT * FROM intake_case_view WHERE case_id = %s", (case,))
    timeline = system.query("SELECT event_type, occurred_at, detail, status FROM intake_timeline "
                            "WHERE case_id = %s ORDER BY occurred_at", (case,))
    counted = system.query("SELECT * FROM reporting_cases WHERE case_id = %s", (case,))
    offices = system.query("SELECT * FROM reporting_office_cases WHERE case_id = %s", (case,))
    ids = ("case_id", "question_id", "resolution_id")
    return {name: [{k: v for k, v in row.items() if k not in ids and not k.endswith("_event")}
                   for row in rows]
            for name, rows in (("view", view), ("timeline", timeline), ("counted", counted),
                               ("offices", offices))}


def test_a_cases_events_out_of_order_in_one_batch_give_what_they_give_in_order(system):
    # Routing would route the made-up cases, and its own events would join the story.
    system.stop("routing")
    in_order, shuffled = uuid.uuid4(), uuid.uuid4()
    with publisher(system) as publish:
        for source, body in story(in_order, LONG_AGO):
            position = publish(source, body)
            wait_until(lambda p=position: all(tracked(system, s, [p]) for s in BATCHED),
                       what=f"{body['event_type']} applied alone")
        for service in BATCHED:
            system.stop(service)
        # The latest first, each store's positions reversed too, and another case's
        # events between them.
        later = story(shuffled, LONG_AGO)[::-1]
        top = {"intake": next(POSITIONS) + 100, "routing": next(POSITIONS) + 100}
        other = uuid.uuid4()
        positions = []
        for (source, body), (also, between) in zip(later, story(other, LONG_AGO), strict=True):
            top[source] -= 1
            positions.append(publish(source, body, position=top[source]))
            positions.append(publish(also, between))
    with system.broker() as connection:
        connection.default_channel.queue_purge(queue_name("routing"))
    system.start("routing")
    for service in BATCHED:
        assert queue(system, service) == (12, 0)
        system.start(service)
    for service in BATCHED:
        wait_until(lambda s=service: tracked(system, s, positions) == sorted(positions)
                   and drained(system, s), what=f"{service} took the mixed batch")
        assert metric(system, service, "ourvoice_consumer_batch_messages_count",
                      queue=queue_name(service)) <= 2

    expected = as_read(system, in_order)
    assert expected["view"][0]["status"] == "resolved"
    assert len(expected["timeline"]) == 6 and expected["counted"][0]["resolved_at"]
    assert as_read(system, shuffled) == expected


# -- routing: intake's events, recorded with their tracking rows in one append a batch ---

def submission(case, at: datetime, **data) -> dict:
    return event("CaseSubmitted", case, at, {"type": "complaint", "category": "water-supply",
                                             "language": "en", "anonymous": True, **data},
                 office_id=None)


def recorded(system, cases) -> dict:
    """The kinds of event routing recorded of each case, in order."""
    rows = system.query("SELECT originator_id, topic FROM routing_events "
                        "WHERE originator_id = ANY(%s) ORDER BY originator_version", (list(cases),))
    kinds = {case: [] for case in cases}
    for row in rows:
        kinds[row["originator_id"]].append(row["topic"].rpartition(".")[2])
    return kinds


def routed_alone(system, publish, cases, at: datetime) -> None:
    """Each case submitted and routed before the test's batch."""
    positions = [publish("intake", submission(case, at)) for case in cases]
    wait_until(lambda: tracked(system, "routing", positions) == sorted(positions),
               what="the cases routed")


def test_routing_records_a_batch_delivered_again_once(system):
    """Routing's append of a batch (new cases routed, others withdrawn) is held at its
    store's table lock while the broker drops the consumer's connection: the broker
    delivers the batch again, the held one commits unacknowledged, and the copy, finding
    its rows, records nothing a second time."""
    now = datetime.now(UTC).replace(microsecond=0)
    new, withdrawn = [uuid.uuid4() for _ in range(20)], [uuid.uuid4() for _ in range(10)]
    dead_before = dead_letters(system, "routing")
    with publisher(system) as publish:
        routed_alone(system, publish, withdrawn, now)
        handled_before = metric(system, "routing", "ourvoice_events_consumed_total",
                                event_type="CaseSubmitted", outcome="handled")
        with psycopg.connect(f"host=127.0.0.1 port={system.pg_port} user=postgres "
                             f"dbname={system.dbname}") as holder:
            holder.execute("LOCK TABLE routing_events IN EXCLUSIVE MODE")
            positions = []
            for case, withdrawing in itertools.zip_longest(new, withdrawn):
                positions.append(publish("intake", submission(case, now)))
                if withdrawing is not None:
                    positions.append(publish("intake", event("CaseWithdrawn", withdrawing, now, {})))
            connection_lost_while_held(system, "routing")
            holder.rollback()  # the held batch commits now

    wait_until(lambda: drained(system, "routing"), what="every message acknowledged")
    assert tracked(system, "routing", positions) == sorted(positions)
    assert recorded(system, [*new, *withdrawn]) == {
        **{case: ["CaseRouted"] for case in new},
        **{case: ["CaseRouted", "WithdrawalRecorded"] for case in withdrawn}}
    assert dead_letters(system, "routing") == dead_before
    # The held batch's messages were handled twice: once with effect, once (delivered
    # again) found done.
    handled = metric(system, "routing", "ourvoice_events_consumed_total",
                     event_type="CaseSubmitted", outcome="handled") - handled_before
    assert handled > len(new)


def test_routing_takes_a_cases_events_out_of_order_in_one_batch(system):
    """One batch: a case's submission, the citizen's message and withdrawal in order; the
    same of another case the other way round (positions too), the two interleaved; and
    the answer and withdrawal of a case routed before, on which the office asked. The
    events of a case not routed yet wait and come back once it is; the others act on
    what the events before them in the batch did."""
    now = datetime.now(UTC).replace(microsecond=0)
    together, reversed_, asked = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    staff = system.principal("staff", OFFICE)
    with publisher(system) as publish:
        routed_alone(system, publish, [asked], now)
        act(system, {"case_id": str(asked)}, "acknowledge", staff)
        act(system, {"case_id": str(asked)}, "request-info", staff, {"question": "Which street?"})
        system.stop("routing")

        def life(case):
            return [submission(case, now),
                    event("InformationProvided", case, now, {"answers_request": False}),
                    event("CaseWithdrawn", case, now + timedelta(seconds=1), {})]

        top = next(POSITIONS) + 100
        positions = []
        for body, backwards in zip(life(together), life(reversed_)[::-1], strict=True):
            positions.append(publish("intake", body))
            top -= 1
            positions.append(publish("intake", backwards, position=top))
        positions += [publish("intake", body) for body in (
            event("InformationProvided", asked, now, {"answers_request": True}),
            event("CaseWithdrawn", asked, now + timedelta(seconds=1), {}))]
    assert queue(system, "routing") == (8, 0)
    dead_before = dead_letters(system, "routing")
    system.start("routing")

    wait_until(lambda: tracked(system, "routing", positions) == sorted(positions)
               and drained(system, "routing"), what="routing took the mixed batch")
    assert recorded(system, [together, reversed_, asked]) == {
        together: ["CaseRouted", "WithdrawalRecorded"],
        reversed_: ["CaseRouted", "WithdrawalRecorded"],
        asked: ["CaseRouted", "CaseAcknowledged", "InformationRequested", "ClockRestarted",
                "WithdrawalRecorded"]}
    assert dead_letters(system, "routing") == dead_before
    # The two that came before their case's submission waited once; the first batch
    # recorded the rest.
    assert metric(system, "routing", "ourvoice_events_consumed_total", outcome="waiting") >= 2
    assert metric(system, "routing", "ourvoice_consumer_batch_messages_count",
                  queue=queue_name("routing")) <= 4


def test_routing_dead_letters_a_poison_in_the_middle_of_a_batch_and_routes_the_rest(system):
    now = datetime.now(UTC).replace(microsecond=0)
    system.stop("routing")
    before = dead_letters(system, "routing")
    cases, poisoned = [uuid.uuid4() for _ in range(40)], uuid.uuid4()
    with publisher(system) as publish:
        positions = [publish("intake", submission(case, now))
                     for case in cases[:20]]
        # A valid envelope routing can make nothing of: no such category.
        poison = publish("intake", submission(poisoned, now, category="no-such-category"))
        positions += [publish("intake", submission(case, now))
                      for case in cases[20:]]
    assert queue(system, "routing") == (41, 0)
    system.start("routing")

    wait_until(lambda: dead_letters(system, "routing") == before + 1 and drained(system, "routing"),
               what="the poison dead-lettered and the rest settled")
    assert tracked(system, "routing", [*positions, poison]) == sorted(positions)
    assert recorded(system, [*cases, poisoned]) == {**{case: ["CaseRouted"] for case in cases},
                                                    poisoned: []}
    batch = {"queue": queue_name("routing")}
    assert metric(system, "routing", "ourvoice_consumer_batch_messages_sum", **batch) == 41
    assert metric(system, "routing", "ourvoice_consumer_batch_messages_count", **batch) <= 4
    assert metric(system, "routing", "ourvoice_events_consumed_total",
                  outcome="dead-lettered") == 1
