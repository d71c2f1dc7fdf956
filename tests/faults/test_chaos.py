"""A few thousand cases through all four services while processes are killed with -9,
RabbitMQ is stopped and started, and PostgreSQL restarts; then nothing may be lost and
nothing doubled, every notice due reached its receiver once, the hash chains hold, and
no citizen's name, phone or email is anywhere in plain text. Runs against a PostgreSQL
cluster and a RabbitMQ node of its own, a real SMTP server and an SMS gateway."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.config import SERVICES
from tests.faults import personal_data
from tests.faults.cases import (
    SETTINGS,
    give_offices_contacts,
    ourvoice,
    outcome,
    submit_until_accepted,
    wait_until_settled,
)
from tests.system import System

# Minutes long: `make test-faults` runs it, `make test` leaves it out.
pytestmark = pytest.mark.chaos

CASES = int(os.environ.get("OURVOICE_FAULT_CASES", "2000"))
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
    wait_until_settled(system, CASES)
    found_out = outcome(system, receivers, accepted)
    told = found_out.told

    verified = ourvoice(system, "audit", "verify")
    searched, found = personal_data_found(system, postgres, tap)

    faults = ", ".join(f"{kind} {times}" for kind, times in sorted(chaos.counts.items()))
    emails, texts = receivers.totals()
    print(f"\nfault suite: {CASES} cases ({len(found_out.citizens)} with a contact), "
          f"{sum(chaos.counts.values())} faults ({faults}), lost {len(found_out.lost)}, "
          f"doubled {found_out.doubled}; "
          f"exited on their own and restarted: {dict(restart_policy.restarted) or 'none'}"
          f"\nnotifications: {len(told.due)} due, {len(told.sent)} sent, {len(told.never_sent)} "
          f"never sent, {len(told.doubled)} doubled; received {emails} emails and {texts} SMS, "
          f"{len(told.never_received)} deliveries missing, {told.copies} copies sent again on a "
          f"later try; {len(found_out.misheard)} citizens not told as they should be"
          f"\naudit verify: exit {verified.returncode}; personal data: {len(found)} found in "
          + ", ".join(f"{n} {place}" for place, n in searched.items()) + " and 2 reports")
    if found:
        print(personal_data.described(found))

    assert chaos.counts["PostgreSQL restart"] and chaos.counts["RabbitMQ stop_app/start_app"] \
        and sum(n for fault, n in chaos.counts.items() if fault.startswith("kill")), \
        "every kind of fault must have happened at least once"
    assert not restart_policy.restarted, \
        f"services exited on their own instead of recovering: {dict(restart_policy.restarted)}"
    found_out.assert_nothing_lost_or_doubled(accepted)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert searched["published events"] >= system.scalar("SELECT count(*) FROM reporting_tracking"), \
        "the tap kept every event published"
    assert not found, "citizens' personal data in plain text:\n" + personal_data.described(found)
