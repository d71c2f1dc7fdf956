"""Raw publishing with kombu, the baselines for the relay:

(a) persistent messages to a topic exchange bound to one queue, no confirms: the most the
    client and broker can move when nobody waits for anything;
(b) the same with a confirm awaited for every message: the price of one round trip per
    message, which the relay avoids by confirming a whole batch at once;
(c) persistent messages in batches of the relay's size, each batch confirmed as a whole,
    to the services' real topology (their quorum queues plus one bound queue): the
    broker's share of the relay's work, without the database or the encoding.

Messages are the size and routing key of a real CaseSubmitted envelope."""

from __future__ import annotations

import time

import kombu
from amqp import Channel

from bench.cases import sample_message
from bench.infra import Progress, broker_cpu, phase, run_for, scratch_vhost
from bench.report import Results
from shared import topology

BENCH_EXCHANGE = kombu.Exchange("bench.events", type="topic", durable=True)
BATCH = 500  # the relay's batch: LogFollower's default batch_size


def bound_queue(name: str, exchange: kombu.Exchange) -> kombu.Queue:
    """A durable classic queue taking every message of `exchange`."""
    return kombu.Queue(name, exchange=exchange, routing_key="#", durable=True)


def message_count(channel: Channel, queue: kombu.Queue) -> int:
    return queue(channel).queue_declare(passive=True).message_count


def wait_for_count(channel: Channel, queue: kombu.Queue, expected: int, timeout: float = 60.0) -> int:
    """Until the queue holds `expected` messages (or the timeout passes): without confirms
    the client is done long before the broker has stored everything it was sent."""
    deadline = time.monotonic() + timeout
    while True:
        count = message_count(channel, queue)
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.02)


def unconfirmed(uri: str, seconds: float, results: Results) -> None:
    key, body = sample_message()
    with kombu.Connection(uri) as connection:
        channel = connection.channel()
        queue = bound_queue("bench.unconfirmed", BENCH_EXCHANGE)
        queue(channel).declare()
        producer = kombu.Producer(channel, exchange=BENCH_EXCHANGE)

        def publish() -> None:
            producer.publish(body, routing_key=key, delivery_mode=2, content_type="application/json",
                             content_encoding="utf-8")

        run = run_for(seconds, publish, Progress("3a no confirms"))
        start = time.perf_counter() - run.seconds
        stored = wait_for_count(channel, queue, run.count)
        elapsed = time.perf_counter() - start
    if stored != run.count:
        results.failures.append(f"raw publish (a): {run.count} published, {stored} queued")
    results.add("amqp.unconfirmed", "Raw persistent publish, no confirms (until all queued)",
                run.count / elapsed, "/s", tag="3a")
    results.details["amqp.unconfirmed"] = {
        "count": run.count, "publish_seconds": round(run.seconds, 3),
        "until_queued_seconds": round(elapsed, 3), "queued": stored, "body_bytes": len(body),
    }


def confirmed_each(uri: str, seconds: float, results: Results) -> None:
    key, body = sample_message()
    with kombu.Connection(uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        queue = bound_queue("bench.confirmed", BENCH_EXCHANGE)
        queue(channel).declare()
        producer = kombu.Producer(channel, exchange=BENCH_EXCHANGE)

        def publish() -> None:
            producer.publish(body, routing_key=key, delivery_mode=2, content_type="application/json",
                             content_encoding="utf-8")

        run = run_for(seconds, publish, Progress("3b confirm each"))
        stored = message_count(channel, queue)
    if stored != run.count:
        results.failures.append(f"raw publish (b): {run.count} confirmed, {stored} queued")
    results.add("amqp.confirmed", "Raw persistent publish, confirm awaited per message", run.rate, "/s",
                tag="3b")
    results.details["amqp.confirmed"] = {"count": run.count, "seconds": round(run.seconds, 3),
                                         "queued": stored}


def confirmed_batches(uri: str, seconds: float, results: Results) -> None:
    key, body = sample_message()
    acked = 0

    def on_ack(delivery_tag: int, multiple: bool) -> None:
        nonlocal acked
        acked = max(acked, delivery_tag) if multiple else acked + 1

    with kombu.Connection(uri) as connection:
        channel = connection.channel()
        topology.declare(channel)
        queue = bound_queue("bench.batches", topology.EVENTS)
        queue(channel).declare()
        channel.confirm_select()
        channel.events["basic_ack"].add(on_ack)
        producer = kombu.Producer(channel, exchange=topology.EVENTS)
        published = 0

        def publish_batch() -> None:
            nonlocal published
            for _ in range(BATCH):
                producer.publish(body, routing_key=key, delivery_mode=2,
                                 content_type="application/json", content_encoding="utf-8")
            published += BATCH
            while acked < published:
                connection.drain_events(timeout=30)

        cpu_before = broker_cpu()
        run = run_for(seconds, publish_batch, Progress(f"3c batches of {BATCH}"))
        broker_seconds = broker_cpu() - cpu_before
        stored = message_count(channel, queue)
        copies = stored + service_queue_messages(channel)
    if stored != published:
        results.failures.append(f"raw publish (c): {published} confirmed, {stored} queued")
    results.add("amqp.batches", f"Raw persistent publish, batches of {BATCH} confirmed, "
                "service topology", published / run.seconds, "/s", tag="3c")
    # What the broker's CPU pays for one event of a case on its way to every service: the
    # measure of the end-to-end phase's RabbitMQ share (the node's other vhosts included).
    if published:
        results.add("amqp.batches.cpu", "RabbitMQ CPU per message in 3c (beam.smp)",
                    1000 * broker_seconds / published, "ms", tag="3c-cpu")
    results.details["amqp.batches"] = {
        "count": published, "seconds": round(run.seconds, 3), "queued": stored,
        "copies_per_message": copies / published if published else None,
        "broker_cpu_seconds": round(broker_seconds, 3),
    }


def service_queue_messages(channel: Channel) -> int:
    """Messages waiting in the services' own queues: each is one more copy the broker
    had to write (quorum queues replicate and fsync each one)."""
    return sum(message_count(channel, topology.service_queue(s)) for s in topology.SUBSCRIPTIONS)


def publish_baselines(results: Results, seconds: float) -> None:
    phase("RabbitMQ: raw kombu publishing (baselines 3a, 3b, 3c)")
    with scratch_vhost() as uri:
        with kombu.Connection(uri) as connection:
            connection.connect()
            version = connection.connection.server_properties.get("version")
            results.environment["rabbitmq"] = version.decode() if isinstance(version, bytes) else version
        unconfirmed(uri, seconds, results)
        confirmed_each(uri, seconds, results)
        confirmed_batches(uri, seconds, results)
