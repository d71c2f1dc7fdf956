"""A few thousand cases through all four services while processes are killed with -9,
RabbitMQ is stopped and started, and PostgreSQL restarts; then nothing may be lost and
nothing doubled, every notice due reached its receiver once, the hash chains hold, and
no citizen's name, phone or email is anywhere in plain text. Runs against a PostgreSQL
cluster and a RabbitMQ node of its own, a real SMTP server and an SMS gateway."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from services.routing.domain import choose_office
from shared.categories import categories
from shared.config import SERVICES
from tests.faults import personal_data
from tests.faults.citizens import complainant, gives_contact
from tests.faults.receivers import Receivers
from tests.system import ROOT, System, complaint, wait_until

# Minutes long: `make test-faults` runs it, `make test` leaves it out.
pytestmark = pytest.mark.chaos

CASES = int(os.environ.get("OURVOICE_FAULT_CASES", "2000"))
COMMUNES = ["120101", "120109", "010201", "170101", "020101", "171001"]
CATEGORIES = ["water-supply", "construction-permits", "civil-registration", "land"]
SETTINGS = {
    "OURVOICE_SUBMISSIONS_PER_MINUTE": "1000000",
    # A try that failed while a service was down comes back within seconds, not minutes.
    "NOTIFICATIONS_RETRY_BASE_SECONDS": "1",
}


@pytest.fixture(scope="module")
def receivers():
    receivers = Receivers()
    receivers.start()
    try:
        yield receivers
    finally:
        receivers.stop()


@pytest.fixture(scope="module")
def system(postgres, rabbitmq, receivers, tmp_path_factory):
    system = System("chaos", {**SETTINGS, **receivers.env}, pg_port=postgres.port,
                    amqp_port=rabbitmq.port, rabbitmq_node=rabbitmq.node)
    system.create()
    try:
        give_offices_contacts(system, tmp_path_factory.mktemp("directory") / "offices.csv")
        system.start_all()
        yield system
    finally:
        system.destroy()


@pytest.fixture(scope="module")
def tap(system):
    tap = personal_data.Tap(system)
    tap.open()
    return tap


def ourvoice(system: System, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), *args], env=system.env,
                          capture_output=True, text=True, timeout=300)


def give_offices_contacts(system: System, directory: Path) -> None:
    """An email and a phone in the directory for every office the cases go to, so that
    every notice to an office is sent too (one without an address is never due)."""
    offices = sorted({choose_office(categories()[category], commune)[0]
                      for commune in COMMUNES for category in CATEGORIES})
    directory.write_text("office_id,email,phone\n" + "".join(
        f"{office},{office}@offices.example.org,023 900 {number:03d}\n"
        for number, office in enumerate(offices)), encoding="utf-8")
    done = ourvoice(system, "directory", "import", str(directory))
    assert done.returncode == 0, done.stderr


def submit_until_accepted(system: System, number: int) -> str:
    """What the app does on a flaky network: the same Idempotency-Key until a 201."""
    body = complaint(location={"commune": COMMUNES[number % len(COMMUNES)]},
                     category=CATEGORIES[number % len(CATEGORIES)],
                     description=f"chaos case {number}", complainant=complainant(number))
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


class RestartPolicy:
    """What the deployment's `restart: unless-stopped` does: a service that exits on its
    own is started again. Counted, because a service should never exit on its own."""

    def __init__(self, system: System):
        self.system = system
        self.lock = threading.Lock()  # held by whoever kills and starts services on purpose
        self.restarted = Counter()
        self.stopped = threading.Event()

    def watch(self) -> None:
        while not self.stopped.wait(0.5):
            with self.lock:
                for service, process in list(self.system.processes.items()):
                    if process.poll() is not None:
                        del self.system.processes[service]
                        self.system.start(service, wait=False)
                        self.restarted[service] += 1


@pytest.fixture
def restart_policy(system):
    policy = RestartPolicy(system)
    watcher = threading.Thread(target=policy.watch)
    watcher.start()
    try:
        yield policy
    finally:
        policy.stopped.set()
        watcher.join()


class Chaos:
    def __init__(self, system, postgres, rabbitmq, restart_policy):
        self.system, self.postgres, self.rabbitmq = system, postgres, rabbitmq
        self.restart_policy = restart_policy
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
        # Rounds in which every kind of fault happens at least once, in a random order; the
        # round under way is finished, so that even a short run has every kind.
        actions = [self.kill_a_service, self.kill_a_service, self.restart_broker,
                   self.restart_database]
        while not self.done.is_set():
            self.random.shuffle(actions)
            for action in actions:
                time.sleep(self.random.uniform(1.0, 3.0))
                action()

    def kill_a_service(self) -> None:
        service = self.random.choice(SERVICES)
        with self.restart_policy.lock:
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


def run_with_chaos(system, postgres, rabbitmq, restart_policy) -> tuple[list[str], Chaos]:
    """Every case submitted while faults happen; the tracking codes, and what was done."""
    chaos = Chaos(system, postgres, rabbitmq, restart_policy)
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
    return accepted, chaos


def notices_recorded(system: System) -> bool:
    """Notifications has read every event of intake and routing that reporting has, and
    with each the notices it calls for (they are recorded in the same transaction)."""
    return system.settled() and system.scalar(
        "SELECT (SELECT count(*) FROM notifications_tracking WHERE application_name <> %(own)s)"
        " = (SELECT count(*) FROM reporting_tracking WHERE application_name <> %(own)s)",
        {"own": "notifications"})


def deliveries_finished(system: System) -> bool:
    """Every notice due is sent, skipped or given up, as far as the outbox shows."""
    return system.scalar(
        "SELECT (SELECT count(*) FROM notifications_events WHERE topic LIKE %(due)s)"
        " = (SELECT count(*) FROM notifications_outbox WHERE state IN ('sent', 'skipped', 'dead'))",
        {"due": "%NotificationDue"})


@dataclass
class Notices:
    """What became of every notice due, in notifications' store and at the receivers."""

    due: set[str]  # deliveries with a NotificationDue
    sent: Counter  # NotificationSent per delivery
    tries: Counter  # DeliveryAttempted per delivery
    received: Counter  # accepted by the SMTP server or the SMS gateway, per delivery

    @property
    def never_sent(self) -> set[str]:
        return self.due - set(self.sent)

    @property
    def doubled(self) -> set[str]:
        """Sent twice in the store, sent without being due, or accepted by a receiver
        more often than it was tried."""
        return {d for d, times in self.sent.items() if times > 1 or d not in self.due} \
            | {d for d, times in self.received.items() if times > self.tries[d]}

    @property
    def never_received(self) -> set[str]:
        return set(self.sent) - set(self.received)

    @property
    def copies(self) -> int:
        """Messages a receiver accepted again on a later try of the same delivery, with the
        same id: the try before was in doubt (its sender exited between the receiver's
        answer and recording it, so the delivery was sent again once the try's lease ran
        out) or failed after the receiver had the message. Retries after a failure, not
        doubled effects: a receiver can drop a copy by its id."""
        return sum(times - 1 for times in self.received.values() if times > 1)


def notices(system: System, receivers: Receivers) -> Notices:
    rows = system.query(
        "SELECT originator_id::text AS delivery, count(*) FILTER (WHERE topic LIKE %s) AS due, "
        "count(*) FILTER (WHERE topic LIKE %s) AS sent, "
        "count(*) FILTER (WHERE topic LIKE %s) AS tries FROM notifications_events "
        "GROUP BY originator_id", ("%NotificationDue", "%NotificationSent", "%DeliveryAttempted"))
    return Notices(due={r["delivery"] for r in rows if r["due"]},
                   sent=Counter({r["delivery"]: r["sent"] for r in rows if r["sent"]}),
                   tries=Counter({r["delivery"]: r["tries"] for r in rows}),
                   received=receivers.deliveries())


def personal_data_found(system, postgres, tap) -> tuple[dict[str, int], list[personal_data.Found]]:
    """Every place searched, counted, and every citizen's name, phone or email found."""
    tables, found = personal_data.in_database(system)
    messages = tap.drain()
    logs = [*sorted(system.logs.glob("*.log")), postgres.dir / "log"]
    found += personal_data.in_messages(messages)
    found += personal_data.in_logs(logs)
    found += personal_data.in_reports(system)
    published = {json.loads(body)["event_id"] for body in messages}
    return {"tables": tables, "published events": len(published), "logs": len(logs)}, found


def test_nothing_is_lost_and_nothing_doubled_whatever_is_killed(system, postgres, rabbitmq,
                                                                 receivers, tap, restart_policy):
    accepted, chaos = run_with_chaos(system, postgres, rabbitmq, restart_policy)

    def all_queued():
        return system.scalar("SELECT count(*) FROM routing_office_queue") >= CASES

    wait_until(all_queued, timeout=300, interval=1, what="every case in a queue")
    wait_until(lambda: notices_recorded(system), timeout=300, interval=1,
               what="every notice recorded")
    wait_until(lambda: deliveries_finished(system), timeout=600, interval=1,
               what="every notice sent")
    wait_until(system.settled, timeout=300, interval=1, what="every event reported")

    queued = [r["tracking_code"] for r in system.query(
        "SELECT tracking_code FROM routing_office_queue")]
    routed_twice = system.query(
        "SELECT originator_id FROM routing_events WHERE topic LIKE %s "
        "GROUP BY originator_id HAVING count(*) > 1", ("%CaseRouted",))
    submitted_twice = system.query(
        "SELECT originator_id FROM intake_events WHERE topic LIKE %s "
        "GROUP BY originator_id HAVING count(*) > 1", ("%CaseSubmitted",))
    told = notices(system, receivers)
    reported = requests.get(system.url("reporting", "/v1/reports/summary"),
                            headers={"Authorization": f"Bearer {system.principal('auditor')}"},
                            timeout=30).json()
    lost = set(accepted) - set(queued)
    doubled = len(queued) - len(set(queued)) + len(routed_twice) + len(submitted_twice) \
        + len(told.doubled)
    citizens = [complainant(n) for n in range(CASES) if gives_contact(n)]
    reached = receivers.deliveries_to()
    # Each is told on each channel that their case was received, then that it was routed.
    misheard = [c["name"] for c in citizens if (reached[c["email"]], reached[c["phone"]]) != (2, 2)]

    verified = ourvoice(system, "audit", "verify")
    searched, found = personal_data_found(system, postgres, tap)

    faults = ", ".join(f"{kind} {times}" for kind, times in sorted(chaos.counts.items()))
    emails, texts = receivers.totals()
    print(f"\nfault suite: {CASES} cases ({len(citizens)} with a contact), "
          f"{sum(chaos.counts.values())} faults ({faults}), lost {len(lost)}, doubled {doubled}; "
          f"exited on their own and restarted: {dict(restart_policy.restarted) or 'none'}"
          f"\nnotifications: {len(told.due)} due, {len(told.sent)} sent, {len(told.never_sent)} "
          f"never sent, {len(told.doubled)} doubled; received {emails} emails and {texts} SMS, "
          f"{len(told.never_received)} deliveries missing, {told.copies} copies sent again on a "
          f"later try; {len(misheard)} citizens not told as they should be"
          f"\naudit verify: exit {verified.returncode}; personal data: {len(found)} found in "
          + ", ".join(f"{n} {place}" for place, n in searched.items()) + " and 2 reports")
    if found:
        print(personal_data.described(found))

    assert chaos.counts["PostgreSQL restart"] and chaos.counts["RabbitMQ stop_app/start_app"] \
        and sum(n for fault, n in chaos.counts.items() if fault.startswith("kill")), \
        "every kind of fault must have happened at least once"
    assert not restart_policy.restarted, \
        f"services exited on their own instead of recovering: {dict(restart_policy.restarted)}"
    assert len(set(accepted)) == CASES
    assert not lost
    assert doubled == 0
    assert system.scalar("SELECT count(*) FROM intake_events WHERE topic LIKE %s",
                         ("%CaseSubmitted",)) == CASES
    assert reported["total"] == CASES
    # Per case its office hears of it by email and SMS; a citizen who gave a contact hears
    # on both that it was received, then that it was routed.
    assert len(told.due) == 2 * CASES + 4 * len(citizens)
    assert not told.never_sent, f"never sent: {sorted(told.never_sent)[:20]}"
    assert not told.never_received, f"never received: {sorted(told.never_received)[:20]}"
    assert set(told.received) <= set(told.sent), "received, never recorded as sent"
    assert not misheard, f"not told once of each by email and SMS: {misheard[:20]}"
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert searched["published events"] >= system.scalar("SELECT count(*) FROM reporting_tracking"), \
        "the tap kept every event published"
    assert not found, "citizens' personal data in plain text:\n" + personal_data.described(found)
