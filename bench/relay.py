"""The relay: how fast a store's notification log reaches the broker, confirmed.

A store is filled first (many cases per transaction, which is not what is measured),
then the platform's own LogFollower + Relay + ConfirmedPublisher drain it, pass after
pass, until nothing is left. A queue bound to `#` proves every event was published."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from itertools import cycle
from typing import Any

import kombu
from eventsourcing.persistence import Notification

from bench.broker import bound_queue, message_count, service_queue_messages
from bench.cases import COMMUNES, new_case
from bench.infra import Progress, phase, scratch_database, scratch_vhost
from bench.report import Results
from services.intake.application import Intake
from shared import settings, topology
from shared.consumer import published_by_owner
from shared.db import FOLLOWERS_DDL, Database
from shared.events import read_event
from shared.follower import LogFollower, position
from shared.relay import ConfirmedPublisher, OutgoingMessage, Relay
from shared.store import open_store

FILL_BATCH = 500  # cases per transaction while filling


class TimedFollower(LogFollower):
    """Adds up the time the follower's reads of the log take, so the relay's time splits
    into reading, publishing, and the rest."""

    seconds = 0.0

    def read(self, cursor: Any, position: int) -> list[Notification]:
        start = time.perf_counter()
        try:
            return super().read(cursor, position)
        finally:
            self.seconds += time.perf_counter() - start


class TimedPublisher(ConfirmedPublisher):
    """The relay's publisher, timing each confirmed batch."""

    def __init__(self, amqp_uri: str):
        super().__init__(amqp_uri)
        self.seconds = 0.0
        self.messages = 0

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        start = time.perf_counter()
        try:
            super().publish(messages)
            self.messages += len(messages)
        finally:
            self.seconds += time.perf_counter() - start


def fill(store: Intake, events: int) -> None:
    progress = Progress("filling the store")
    communes = cycle(COMMUNES)
    done = 0
    while done < events:
        n = min(FILL_BATCH, events - done)
        store.record(*(new_case(next(communes)) for _ in range(n)))
        done += n
        progress.update(f"{done:,}/{events:,} events")
    progress.done(f"{done:,} events stored")


def relay_throughput(results: Results, events: int) -> None:
    phase(f"Relay: {events:,} stored events to the broker, confirmed")
    with scratch_database() as pg, scratch_vhost() as uri:
        store = open_store(Intake, pg)
        db = Database(pg, max_size=2)
        publisher = TimedPublisher(uri)
        try:
            db.migrate(FOLLOWERS_DDL)
            fill(store, events)
            with kombu.Connection(uri) as connection:
                channel = connection.channel()
                # The services' queues as `ourvoice setup` declares them, so that each
                # message is routed into them as in life.
                topology.declare(channel)
                queue = bound_queue("bench.relayed", topology.EVENTS)
                queue(channel).declare()

                follower = TimedFollower(
                    "relay:intake", db, store.recorder, Relay(Intake.name, store, publisher),
                )
                progress = Progress("relaying")
                relayed = passes = 0
                start = time.perf_counter()
                while handled := follower.follow_once():
                    relayed += handled
                    passes += 1
                    elapsed = time.perf_counter() - start
                    progress.update(f"{relayed:,}/{events:,} events, {relayed / elapsed:,.0f}/s")
                elapsed = time.perf_counter() - start
                progress.done(f"{relayed:,} events in {elapsed:.1f} s, {relayed / elapsed:,.0f}/s")

                queued = message_count(channel, queue)
                copies = queued + service_queue_messages(channel)
            last = store.recorder.max_notification_id() or 0
            moved_to = position(db, "relay:intake")
        finally:
            publisher.close()
            db.close()
            store.close()

    complete = queued == events == publisher.messages and moved_to == last
    verdict = "every message" if complete else "NOT every message"
    results.notes.append(
        f"Relay: the queue bound to '#' received {queued:,} of {events:,} stored events "
        f"({verdict}); the relay published {publisher.messages:,}, its position is {moved_to:,} "
        f"of {last:,}; each message was also routed to the services' queues "
        f"({copies / max(queued, 1):.0f} stored copies per message)."
    )
    if not complete:
        results.failures.append(f"relay: {queued} of {events} events reached the bound queue")
    rate = relayed / elapsed
    results.add("relay", "Relay, stored events to broker (confirmed)", rate, "/s",
                baseline=results.find("amqp.unconfirmed"))
    results.add("relay.vs.confirmed", "Relay vs. confirm per message", rate, "/s",
                baseline=results.find("amqp.confirmed"))
    results.add("relay.vs.batches", "Relay vs. raw batched confirms, same topology", rate, "/s",
                baseline=results.find("amqp.batches"))
    other = elapsed - follower.seconds - publisher.seconds
    results.details["relay"] = {
        "events": events,
        "relayed": relayed,
        "passes": passes,
        "seconds": round(elapsed, 3),
        "queued_in_bound_queue": queued,
        "stored_copies_per_message": round(copies / max(queued, 1), 2),
        "share_reading_log": round(follower.seconds / elapsed, 3),
        "share_publishing_confirmed": round(publisher.seconds / elapsed, 3),
        "share_decoding_encoding_and_position": round(other / elapsed, 3),
    }
    results.notes.append(
        f"Relay time: {follower.seconds / elapsed:.0%} reading the log, "
        f"{publisher.seconds / elapsed:.0%} publishing and awaiting confirms, "
        f"{other / elapsed:.0%} decoding events, building envelopes and moving the position."
    )


def consumed(connection: kombu.Connection, queue: kombu.Queue, expected: int,
             check: bool) -> float:
    """Messages per second through a consumer doing what a service's consumer does before
    its handler (decode, validate, and with `check` the user_id test), acknowledged."""
    channel = connection.channel()
    channel.basic_qos(0, 500, False)
    seen = refused = 0

    def on_message(message) -> None:
        nonlocal seen, refused
        read_event(json.loads(message.body))
        if check and not published_by_owner(message.headers["ourvoice-source"],
                                            message.properties.get("user_id")):
            refused += 1
        seen += 1
        channel.basic_ack(message.delivery_tag)

    start = time.perf_counter()
    channel.basic_consume(queue.name, callback=on_message)
    while seen < expected:
        connection.drain_events(timeout=30)
    elapsed = time.perf_counter() - start
    channel.close()
    if refused:
        raise AssertionError(f"{refused} of {seen} messages failed the user_id check")
    return seen / elapsed


def user_id_cost(results: Results, events: int, rounds: int = 4) -> None:
    """The relay and a consumer with and without the broker-checked `user_id`, in the same
    run on the same stored events, alternating, best round of each."""
    phase(f"The broker's user_id check: {events:,} events relayed and consumed, "
          "with and without it")
    best: dict[tuple[str, bool], float] = {}
    # The bench publishes as the operator; here that user is the store's owner.
    owner, os.environ["INTAKE_BROKER_USER"] = os.environ.get("INTAKE_BROKER_USER"), "guest"
    settings.reload()  # read at start, so read again
    try:
        with scratch_database() as pg, scratch_vhost() as uri:
            store = open_store(Intake, pg)
            db = Database(pg, max_size=2)
            try:
                db.migrate(FOLLOWERS_DDL)
                fill(store, events)
                with kombu.Connection(uri) as connection:
                    channel = connection.channel()
                    topology.EVENTS(channel).declare()
                    for n in range(rounds):
                        # Alternating which goes first, so neither has the warm start.
                        for stamped in (n % 2 == 1, n % 2 == 0):
                            queue = bound_queue(f"bench.user-id.{n}.{stamped}", topology.EVENTS)
                            queue(channel).declare()
                            publisher = ConfirmedPublisher(uri, stamp_user=stamped)
                            follower = LogFollower(f"relay:user-id:{n}:{stamped}", db,
                                                   store.recorder,
                                                   Relay(Intake.name, store, publisher))
                            start, relayed = time.perf_counter(), 0
                            while handled := follower.follow_once():
                                relayed += handled
                            rate = relayed / (time.perf_counter() - start)
                            publisher.close()
                            best["relay", stamped] = max(best.get(("relay", stamped), 0), rate)
                            rate = consumed(connection, queue, relayed, check=stamped)
                            best["consumer", stamped] = max(best.get(("consumer", stamped), 0),
                                                            rate)
                            queue(channel).delete()
            finally:
                db.close()
                store.close()
    finally:
        if owner is None:
            del os.environ["INTAKE_BROKER_USER"]
        else:
            os.environ["INTAKE_BROKER_USER"] = owner
        settings.reload()
    for part, label in (("relay", "Relay"), ("consumer", "Consumer (decode, validate, ack)")):
        plain = results.add(f"{part}.without-user-id", f"{label}, no user_id", best[part, False],
                            "/s", tag="baseline")
        results.add(f"{part}.with-user-id", f"{label}, user_id checked", best[part, True], "/s",
                    baseline=plain)
        print(f"{label}: {best[part, True]:,.0f}/s with user_id, {best[part, False]:,.0f}/s "
              f"without; ratio {best[part, True] / best[part, False]:.2f}", flush=True)


if __name__ == "__main__":
    import sys

    figures = Results()
    user_id_cost(figures, int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
