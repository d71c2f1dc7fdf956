"""Beyond one machine: a RabbitMQ cluster of three nodes of the test's own, the services'
quorum queues replicated on all three, two instances of every service (the first ones
told the nodes in the order A, B, C, the second ones B, C, A), and a steady load of cases
while node A, the one the first instances are on, is stopped and later started again.
Nothing may be lost or doubled, every notice due reaches its receiver once, no service
exits, and the cases routed per second come back within a minute."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import kombu
import pytest
import requests

from ourvoice.setup import declare_rpc_queue
from shared import topology
from shared.config import SERVICES
from tests.faults.cases import (
    SETTINGS,
    give_offices_contacts,
    outcome,
    submit_until_accepted,
    wait_until_settled,
)
from tests.faults.infra import ThrowawayRabbitCluster
from tests.system import System

# Over a minute of load: `make test-faults` runs it, `make test` leaves it out.
pytestmark = pytest.mark.chaos

RATE = float(os.environ.get("OURVOICE_CLUSTER_RATE", "15"))  # cases submitted per second
LOAD_SECONDS = 80
STOP_AT, START_AT = 20, 40  # seconds into the load: node A is down for 20 s
WINDOW = 10  # seconds, for the figures printed
RECOVERY_WINDOW, RECOVERY_SECONDS = 20, 60


@pytest.fixture(scope="module")
def cluster():
    cluster = ThrowawayRabbitCluster()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def system(postgres, cluster, receivers, tmp_path_factory):
    """Every service twice; the URLs of the second instances, by service."""
    a, b, c = (node.port for node in cluster.nodes)
    # Broker users, permissions and the virtual host are the cluster's: made once, on A.
    system = System("cluster", {**SETTINGS, **receivers.env}, pg_port=postgres.port,
                    amqp_port=(a, b, c), rabbitmq_node=cluster.first.node)
    system.create()
    try:
        give_offices_contacts(system, tmp_path_factory.mktemp("directory") / "offices.csv")
        system.start_all()
        with ExitStack() as second_instances:
            yield system, {service: second_instances.enter_context(system.another(
                service, f"{service}-2", AMQP_URI=system.amqp_uri_over(b, c, a)))
                for service in SERVICES}
    finally:
        system.destroy()


def test_setup_replaces_a_classic_rpc_queue_by_a_quorum_queue(cluster):
    """An earlier version's RPC queue was a classic queue, on one node: `ourvoice setup`
    puts a replicated one in its place (a queue's type cannot change)."""
    node, vhost = cluster.first, "ourvoice-test-rpc-queue"
    node.ctl("add_vhost", vhost)
    try:
        node.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        queue = topology.rpc_queue("intake")
        with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{node.port}/{vhost}") as connection:
            kombu.Queue(queue.name, exchange=queue.exchange, routing_key=queue.routing_key,
                        durable=True)(connection.channel()).declare()
            declare_rpc_queue(connection, queue)
            declare_rpc_queue(connection, queue)  # and leaves a quorum queue as it is
        rows = json.loads(node.ctl("list_queues", "-p", vhost, "name", "type", "members",
                                   "--formatter", "json"))
        assert [(r["name"], r["type"], len(r["members"])) for r in rows] == \
            [("rpc-intake", "quorum", 3)]
    finally:
        node.ctl("delete_vhost", vhost)


def queue_members(cluster: ThrowawayRabbitCluster, system: System) -> dict[str, tuple]:
    """Each quorum queue of the system's virtual host: its members and those online."""
    rows = json.loads(cluster.nodes[1].ctl("list_queues", "-p", system.vhost, "name", "type",
                                           "members", "online", "--formatter", "json"))
    return {r["name"]: (set(r["members"]), set(r["online"])) for r in rows
            if r["type"] == "quorum"}


class RoutedCount:
    """Cases in routing's office queues, sampled every second: what gets through."""

    def __init__(self, system: System):
        self.system = system
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                routed = self.system.scalar("SELECT count(*) FROM routing_office_queue")
            except Exception:  # noqa: BLE001 - a missed sample only widens a window
                continue
            self.samples.append((time.monotonic(), routed))

    def at(self, moment: float) -> int:
        """Cases routed by `moment` (the last sample before it)."""
        return max([routed for sampled, routed in self.samples if sampled <= moment],
                   default=0)

    def rate(self, start: float, end: float) -> float:
        return (self.at(end) - self.at(start)) / (end - start)


def submit_steadily(system: System, intakes: list[str], begun: float) -> list[str]:
    """RATE cases a second for LOAD_SECONDS, to both intakes in turn (as a load balancer
    would), each retried as the app does until accepted: the tracking codes."""
    with ThreadPoolExecutor(16) as clients:
        pending = []
        for number in range(int(RATE * LOAD_SECONDS)):
            time.sleep(max(0.0, begun + number / RATE - time.monotonic()))
            pending.append(clients.submit(submit_until_accepted, system, number,
                                          intakes[number % len(intakes)]))
        return [case.result() for case in pending]


def test_a_node_stopped_under_load_loses_nothing_and_throughput_comes_back(cluster, system,
                                                                           receivers):
    system, second = system
    nodes = {node.node for node in cluster.nodes}
    members = queue_members(cluster, system)
    assert {f"{queue}{service}" for service in SERVICES for queue in ("ourvoice.", "rpc-")} \
        <= set(members)
    assert all(found == (nodes, nodes) for found in members.values()), \
        f"each quorum queue has a replica on each node: {members}"

    routed = RoutedCount(system)
    sampler = threading.Thread(target=routed.run)
    sampler.start()
    begun = time.monotonic()
    moments: dict[str, float] = {}
    failures: list[BaseException] = []
    answered: dict[str, list] = {}  # RPC calls made while A is down

    def stop_and_start_node_a():
        try:
            time.sleep(max(0.0, begun + STOP_AT - time.monotonic()))
            moments["stop"] = time.monotonic()
            cluster.first.stop_node()
            assert cluster.running(cluster.nodes[1]) == nodes - {cluster.first.node}
            time.sleep(5)  # the instances that were on A find B
            answered.update({service: system.rpc("reporting", service, "case_history",
                                                 str(uuid.uuid4()), timeout=10)
                             for service in ("intake", "routing", "notifications")})
            time.sleep(max(0.0, begun + START_AT - time.monotonic()))
            moments["start"] = time.monotonic()
            cluster.first.start()
            moments["started"] = time.monotonic()
        except BaseException as failure:  # reported by the test, not lost in a thread
            failures.append(failure)

    trouble = threading.Thread(target=stop_and_start_node_a)
    trouble.start()
    try:
        accepted = submit_steadily(system, [system.urls["intake"], second["intake"]], begun)
        loaded = time.monotonic()
    finally:
        trouble.join()
    if failures:
        raise failures[0]
    try:
        wait_until_settled(system, len(accepted))
    finally:
        routed.stopped.set()
        sampler.join()
    found_out = outcome(system, receivers, accepted)

    stop = moments["stop"]
    before = routed.rate(begun + 5, stop)  # after the first seconds' warm-up
    windows = [(start - stop, routed.rate(start, start + RECOVERY_WINDOW))
               for start in (stop + offset for offset in range(0, RECOVERY_SECONDS, WINDOW))
               if start + RECOVERY_WINDOW <= loaded]
    back = next((offset + RECOVERY_WINDOW for offset, rate in windows if rate >= before / 2),
                None)
    per_window = [routed.rate(start, start + WINDOW) for start in
                  (begun + n * WINDOW for n in range(int((loaded - begun) // WINDOW)))]

    def phase(rate_start: float) -> str:
        return ("before" if rate_start + WINDOW <= stop else
                "during" if rate_start < moments["started"] else "after")

    told = found_out.told
    print(f"\ncluster: {len(accepted)} cases at {RATE:g}/s over {LOAD_SECONDS} s to 2 intakes, "
          f"node A down from {STOP_AT} s for {moments['start'] - stop:.0f} s (back up "
          f"{moments['started'] - stop:.0f} s after the stop); lost {len(found_out.lost)}, "
          f"doubled {found_out.doubled}; notices {len(told.due)} due, {len(told.sent)} sent, "
          f"{len(told.never_received)} missing, {told.copies} copies on a later try"
          f"\nrouted cases/s per {WINDOW}-s window: " + ", ".join(
              f"{phase(begun + n * WINDOW)} {rate:.1f}" for n, rate in enumerate(per_window))
          + f"\nbefore the stop {before:.1f}/s; {RECOVERY_WINDOW}-s windows from the stop: "
          + ", ".join(f"+{offset:.0f} s {rate:.1f}/s" for offset, rate in windows)
          + (f"; back to half within {back} s" if back is not None else "; never back to half"))

    still_up = {service: system.healthy(service) for service in SERVICES}
    still_up |= {f"{service}-2": requests.get(url + "/health", timeout=5).status_code == 200
                 for service, url in second.items()}
    assert all(still_up.values()), f"instances not healthy after the node came back: {still_up}"
    assert answered == {"intake": [], "routing": [], "notifications": []}, \
        "every service answers RPC calls while a node is down"
    assert cluster.running() == nodes
    assert all(online == nodes for _, online in queue_members(cluster, system).values())
    found_out.assert_nothing_lost_or_doubled(accepted)
    assert back is not None and back <= RECOVERY_SECONDS, \
        f"routed {before:.1f}/s before the stop; after it: {windows}"
