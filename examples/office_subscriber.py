"""An office system's subscriber to Our Voice events, in plain kombu.

It binds a durable queue of its own to the topic exchange `ourvoice.events` for one
district (`*.12.1201`) or one province (`*.12.*`), and prints each event as one line of
JSON. Events are acknowledged only after they are handled, so none is lost while the
subscriber is down or when it dies mid-way; a copy (the same `event_id`) is dropped.

    python examples/office_subscriber.py --district 1201
    python examples/office_subscriber.py --province 12 --queue office.phnom-penh
    AMQP_URI=amqp://user:password@broker:5672/ python examples/office_subscriber.py ...

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

from kombu import Connection, Exchange, Queue

EXCHANGE = Exchange("ourvoice.events", type="topic", durable=True)


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


def binding_key(province: str | None, district: str | None) -> str:
    if district:
        return f"*.{district[:2]}.{district}"
    return f"*.{province}.*"


def handle(event: dict, routing_key: str) -> None:
    """What an office system does with an event; here, one JSON line on stdout."""
    print(json.dumps({"routing_key": routing_key, "event_type": event["event_type"],
                      "schema_version": event["schema_version"], "event_id": event["event_id"],
                      "tracking_code": event["tracking_code"], "office_id": event["office_id"],
                      "location": event["location"], "data": event["data"]},
                     ensure_ascii=False), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    area = parser.add_mutually_exclusive_group(required=True)
    area.add_argument("--district", help="a district code, e.g. 1201")
    area.add_argument("--province", help="a province code, e.g. 12")
    parser.add_argument("--queue", help="the queue's name (default office.<area>); keep it "
                        "the same between runs to get what arrived while you were away")
    parser.add_argument("--amqp", default=os.environ.get("AMQP_URI",
                                                         "amqp://guest:guest@localhost:5672/"))
    args = parser.parse_args(argv)
    key = binding_key(args.province, args.district)
    queue = Queue(args.queue or f"office.{args.district or args.province}", exchange=EXCHANGE,
                  routing_key=key, durable=True)
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
            print(f"listening on {queue.name} bound to {EXCHANGE.name} with {key}",
                  file=sys.stderr, flush=True)
            while not stopping:
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
