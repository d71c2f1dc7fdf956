"""No lost events, no double effects: kills, redeliveries and malformed messages."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.faults

COMMUNES = ["120101", "120109", "010201", "170101", "020101"]


def routed_cases(system) -> int:
    return system.scalar("SELECT count(*) FROM routing_office_queue")


def test_routing_killed_while_200_complaints_arrive_routes_each_exactly_once(system):
    def one(i):
        return submit(system, complaint(location={"commune": COMMUNES[i % len(COMMUNES)]},
                                        description=f"complaint {i}"))

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(one, i) for i in range(200)]
        wait_until(lambda: routed_cases(system) >= 40, what="routing under way")
        system.kill("routing")
        time.sleep(0.5)  # submissions go on while routing is down
        system.start("routing")
        submitted = [f.result() for f in futures]

    wait_until(lambda: routed_cases(system) == 200, timeout=60, what="all 200 routed")
    time.sleep(0.5)  # a doubled effect would show up in this time
    assert routed_cases(system) == 200
    assert system.scalar("SELECT count(DISTINCT case_id) FROM routing_office_queue") == 200
    assert system.scalar(
        "SELECT count(*) FROM routing_events WHERE topic LIKE %s", ("%CaseRouted",)) == 200
    queued = {r["tracking_code"] for r in system.query(
        "SELECT tracking_code FROM routing_office_queue")}
    assert queued == {s["tracking_code"] for s in submitted}


def test_intake_killed_after_commit_before_publish_loses_nothing(system):
    """Hold the relay's lease so intake commits cases it cannot publish yet, kill -9 intake,
    then let a new intake process publish them."""
    before = routed_cases(system)
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={system.dbname}") as lease:
        lease.execute("SELECT * FROM ourvoice_followers WHERE name = 'relay:intake' FOR UPDATE")
        submitted = [submit(system, complaint(description=f"held {i}")) for i in range(20)]
        time.sleep(0.3)
        assert routed_cases(system) == before, "nothing may be published while held"
        system.kill("intake")
        lease.rollback()
    system.start("intake")
    wait_until(lambda: routed_cases(system) == before + 20, what="held cases routed")
    codes = {r["tracking_code"] for r in system.query(
        "SELECT tracking_code FROM routing_office_queue")}
    assert {s["tracking_code"] for s in submitted} <= codes


def test_relay_publishing_again_after_a_crash_doubles_no_effect(system):
    """A relay that dies after the broker confirmed but before it moved its position
    publishes the same events again: every consumer must ignore the second copy."""
    submitted = submit(system, complaint(description="published twice"))
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM reporting_cases WHERE case_id = %s", (submitted["case_id"],)),
        what="case counted")
    wait_until(system.settled, what="every event reported")
    routed_before = routed_cases(system)
    from kombu import Queue

    from shared.topology import EVENTS

    with system.broker() as connection:
        probe = Queue("probe.replayed", exchange=EVENTS, routing_key="#", exclusive=True)
        replayed = []
        with connection.Consumer(probe, callbacks=[lambda b, m: replayed.append(b)],
                                 accept=["json"]):
            # Rewind both relays over their last events, as if their positions had never
            # been saved after the broker confirmed.
            system.stop("intake")
            system.stop("routing")
            rewound = sum(min(2, row["position"]) for row in system.query(
                "SELECT position FROM ourvoice_followers "
                "WHERE name IN ('relay:intake', 'relay:routing')"))
            system.query("UPDATE ourvoice_followers SET position = greatest(position - 2, 0) "
                         "WHERE name IN ('relay:intake', 'relay:routing') RETURNING position")
            system.start("intake")
            system.start("routing")

            def drained():
                try:
                    connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass
                return len(replayed) >= rewound

            wait_until(drained, what="the rewound events published again")
    time.sleep(1.0)
    assert routed_cases(system) == routed_before
    # Deliveries of earlier cases may still be going out; none may go out twice.
    assert not system.query(
        "SELECT originator_id FROM notifications_events WHERE topic LIKE %s "
        "GROUP BY originator_id HAVING count(*) > 1", ("%NotificationSent",))
    # The whole figures: the public sees only ended months, with small counts held back.
    summary = system.call("GET", "reporting", "/v1/reports/summary",
                          system.principal("auditor")).json()
    assert summary["total"] == system.scalar(
        "SELECT count(*) FROM reporting_cases WHERE submitted_at IS NOT NULL")


def test_the_same_message_delivered_twice_has_one_effect(system):
    """Copy a real CaseSubmitted off the bus and deliver it twice more."""
    with system.broker() as connection:
        from kombu import Queue

        from shared.topology import EVENTS

        probe = Queue("probe.submitted", exchange=EVENTS, routing_key="CaseSubmitted.#",
                      exclusive=True)
        captured = []
        with connection.Consumer(probe, callbacks=[lambda b, m: captured.append(m)],
                                 accept=["json"]):
            submitted = submit(system, complaint(description="delivered three times"))
            wait_until(lambda: (connection.drain_events(timeout=0.2) if not captured else 1)
                       or captured, what="CaseSubmitted on the bus")
    message = captured[0]
    assert json.loads(message.body)["tracking_code"] == submitted["tracking_code"]
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s",
        (submitted["tracking_code"],)), what="first delivery routed")
    for _ in range(2):
        system.publish_raw(message.delivery_info["routing_key"], message.body,
                           headers=message.headers, as_service="intake")
    time.sleep(1.0)
    assert system.scalar("SELECT count(*) FROM routing_events WHERE originator_id = %s",
                         (submitted["case_id"],)) == 1
    assert system.scalar("SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s",
                         (submitted["tracking_code"],)) == 1


def test_a_malformed_message_is_dead_lettered_and_the_consumer_goes_on(system):
    from shared.topology import dead_letter_queue_name

    system.publish_raw("CaseSubmitted.12.1201", b"{not json")
    system.publish_raw("CaseSubmitted.12.1201", json.dumps({"event_type": "CaseSubmitted"}).encode(),
                       headers={"ourvoice-source": "intake", "ourvoice-position": 999999})
    system.publish_raw("CaseSubmitted.12.1201", b"\x00\x01binary", content_type="application/x-evil")
    submitted = submit(system, complaint(description="after the garbage"))
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s",
        (submitted["tracking_code"],)), what="valid case routed after malformed ones")

    def dead_letters():
        with system.broker() as connection:
            _, count, _ = connection.default_channel.queue_declare(
                dead_letter_queue_name("routing"), passive=True)
            return count

    assert wait_until(lambda: dead_letters() == 3, what="3 dead letters for routing")
    for service in ("routing", "intake", "notifications", "reporting"):
        assert system.healthy(service)
