"""An office system's subscriber to Our Voice events, in plain kombu.

It consumes the queue an operator made for it with `ourvoice subscribers add`, bound to
the exchange `ourvoice.events` for one district (`*.12.1201`) or one province (`*.12.*`),
and prints each event as one line of JSON. Its broker user may consume that queue and
nothing else: it declares nothing, publishes nothing and calls nothing. Events are
acknowledged only after they are handled, so none is lost while the subscriber is down or
when it dies mid-way; a copy (the same `event_id`) is dropped.

    ourvoice subscribers add phnom-penh --bind '*.12.*'     # prints the password, once
    AMQP_URI=amqp://ourvoice-subscriber-phnom-penh:PASSWORD@broker:5672/ \
        python examples/office_subscriber.py --queue ourvoice.subscriber.phnom-penh

Needs nothing but kombu (`pip install kombu`). The events are described in
docs/asyncapi.yaml; read only the fields you need and ignore the others, so that newer
versions of an event (a higher `schema_version`, more fields) do not break you."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections import OrderedDict

from kombu import Connection, Queue


class Seen:
    """The last event ids handled, to drop a copy delivered again."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self.ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """True the first time an id is seen."""
        if event_id in self.ids:
            return False
        self.ids[event_id] = None
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


def handle(event: dict, routing_key: str) -> None:
    """What an office system does with an event; here, one JSON line on stdout."""
    print(json.dumps({"routing_key": routing_key, "event_type": event["event_type"],
                      "schema_version": event["schema_version"], "event_id": event["event_id"],
                      "tracking_code": event["tracking_code"], "office_id": event["office_id"],
                      "location": event["location"], "data": event["data"]},
                     ensure_ascii=False), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", required=True,
                        help="the queue `ourvoice subscribers add NAME` made: "
                        "ourvoice.subscriber.NAME")
    parser.add_argument("--amqp", default=os.environ.get("AMQP_URI"),
                        help="amqp://ourvoice-subscriber-NAME:PASSWORD@broker:5672/ "
                        "(default: AMQP_URI)")
    args = parser.parse_args(argv)
    if not args.amqp:
        parser.error("give --amqp or AMQP_URI: the subscriber's user and password")
    # The operator declared and bound it; this user may not declare anything.
    queue = Queue(args.queue, no_declare=True)
    seen = Seen()
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def on_message(body, message):
        try:
            event = json.loads(message.body)
            first = seen.add(event["event_id"])
        except (ValueError, KeyError, TypeError):
            message.reject()  # not an event we can read; do not take it again
            return
        if first:
            handle(event, message.delivery_info["routing_key"])
        message.ack()

    with Connection(args.amqp) as connection:
        with connection.Consumer(queue, callbacks=[on_message], accept=["json"]) as consumer:
            consumer.qos(prefetch_count=100)
            print(f"listening on {queue.name}", file=sys.stderr, flush=True)
            while not stopping:
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
