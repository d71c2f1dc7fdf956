"""A few thousand cases through all four services while processes are killed with -9,
RabbitMQ is stopped and started, and PostgreSQL restarts; then nothing may be lost and
nothing doubled. Runs against a PostgreSQL cluster and a RabbitMQ node of its own."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared.config import SERVICES
from tests.system import System, complaint, wait_until

# Minutes long: `make test-faults` runs it, `make test` leaves it out.
pytestmark = pytest.mark.chaos

CASES = int(os.environ.get("OURVOICE_FAULT_CASES", "2000"))
COMMUNES = ["120101", "120109", "010201", "170101", "020101", "171001"]
CATEGORIES = ["water-supply", "construction-permits", "civil-registration", "land"]


@pytest.fixture(scope="module")
def system(postgres, rabbitmq):
    system = System("chaos", {"OURVOICE_SUBMISSIONS_PER_MINUTE": "1000000"},
                    pg_port=postgres.port, amqp_port=rabbitmq.port, rabbitmq_node=rabbitmq.node)
    system.create()
    try:
        system.start_all()
        yield system
    finally:
        system.destroy()


def submit_until_accepted(system: System, number: int) -> str:
    """What the app does on a flaky network: the same Idempotency-Key until a 201."""
    body = complaint(location={"commune": COMMUNES[number % len(COMMUNES)]},
                     category=CATEGORIES[number % len(CATEGORIES)],
                     description=f"chaos case {number}")
    key = str(uuid.uuid4())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            response = requests.post(system.url("intake", "/v1/cases"), json=body, timeout=10,
                                     headers={"Idempotency-Key": key})
            if response.status_code == 201:
                return response.json()["tracking_code"]
            assert response.status_code in (429, 500, 502, 503), response.text
        except requests.RequestException:
            pass  # intake is being killed or restarted
        time.sleep(0.2)
    raise AssertionError(f"case {number} was never accepted")


class Chaos:
    def __init__(self, system, postgres, rabbitmq):
        self.system, self.postgres, self.rabbitmq = system, postgres, rabbitmq
        self.done = threading.Event()
        self.counts = Counter()
        self.failure: BaseException | None = None
        self.random = random.Random(int(os.environ.get("OURVOICE_FAULT_SEED", "7")))

    def run(self) -> None:
        try:
            self._rounds()
        except BaseException as failure:  # reported by the test, not lost in a thread
            self.failure = failure

    def _rounds(self) -> None:
        # Rounds in which every kind of fault happens at least once, in a random order.
        actions = [self.kill_a_service, self.kill_a_service, self.restart_broker,
                   self.restart_database]
        while not self.done.is_set():
            self.random.shuffle(actions)
            for action in actions:
                if self.done.wait(self.random.uniform(1.0, 3.0)):
                    return
                action()

    def kill_a_service(self) -> None:
        service = self.random.choice(SERVICES)
        self.system.kill(service)
        time.sleep(self.random.uniform(0.0, 1.0))
        self.system.start(service)
        self.counts[f"kill -9 {service}"] += 1

    def restart_broker(self) -> None:
        self.rabbitmq.restart_app()
        self.counts["RabbitMQ stop_app/start_app"] += 1

    def restart_database(self) -> None:
        self.postgres.restart()
        self.counts["PostgreSQL restart"] += 1


def test_nothing_is_lost_and_nothing_doubled_whatever_is_killed(system, postgres, rabbitmq):
    chaos = Chaos(system, postgres, rabbitmq)
    troublemaker = threading.Thread(target=chaos.run)
    troublemaker.start()
    try:
        with ThreadPoolExecutor(6) as clients:
            accepted = list(clients.map(lambda n: submit_until_accepted(system, n), range(CASES)))
    finally:
        chaos.done.set()
        troublemaker.join()
    if chaos.failure:
        raise chaos.failure
    for service in SERVICES:
        if service not in system.processes:
            system.start(service)

    def all_queued():
        return system.scalar("SELECT count(*) FROM routing_office_queue") >= CASES

    wait_until(all_queued, timeout=300, interval=1, what="every case in a queue")
    wait_until(system.settled, timeout=300, interval=1, what="every event reported")

    queued = [r["tracking_code"] for r in system.query(
        "SELECT tracking_code FROM routing_office_queue")]
    routed_twice = system.query(
        "SELECT originator_id FROM routing_events WHERE topic LIKE %s "
        "GROUP BY originator_id HAVING count(*) > 1", ("%CaseRouted",))
    submitted_twice = system.query(
        "SELECT originator_id FROM intake_events WHERE topic LIKE %s "
        "GROUP BY originator_id HAVING count(*) > 1", ("%CaseSubmitted",))
    notified_twice = system.query(
        "SELECT originator_id FROM notifications_events WHERE topic LIKE %s "
        "GROUP BY originator_id HAVING count(*) > 1", ("%NotificationSent",))
    reported = requests.get(system.url("reporting", "/v1/reports/summary"),
                            headers={"Authorization": f"Bearer {system.principal('auditor')}"},
                            timeout=30).json()
    lost = set(accepted) - set(queued)
    doubled = len(queued) - len(set(queued)) + len(routed_twice) + len(submitted_twice) \
        + len(notified_twice)
    print(f"\nfault suite: {CASES} cases, {sum(chaos.counts.values())} faults "
          f"({dict(chaos.counts)}), lost {len(lost)}, doubled {doubled}")

    assert chaos.counts["PostgreSQL restart"] and chaos.counts["RabbitMQ stop_app/start_app"] \
        and sum(n for fault, n in chaos.counts.items() if fault.startswith("kill")), \
        "every kind of fault must have happened at least once"
    assert len(set(accepted)) == CASES
    assert not lost
    assert doubled == 0
    assert system.scalar("SELECT count(*) FROM intake_events WHERE topic LIKE %s",
                         ("%CaseSubmitted",)) == CASES
    assert reported["total"] == CASES
