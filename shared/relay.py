"""The relay: a transactional outbox from an event store to the `ourvoice.events` exchange.

It follows the store's notification log (see follower.py), publishes each public event
persistently on a channel in confirm mode, waits until the broker has confirmed the whole
batch, and only then lets the follower move its position. Killed at any moment, it
publishes again from the last confirmed position: consumers drop what they already had
by its (source, position), so nothing is lost and no effect is doubled.

Before publishing, it checks each event's link in the store's hash chain (see
chain.py): an event whose link does not hold is not published, and the relay stops
there, saying so, until it holds (the row taken out, the chain put right)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import kombu
from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from shared import metrics, topology
from shared.chain import RelayCheck
from shared.events import public_event, routing_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingMessage:
    routing_key: str
    body: bytes
    headers: dict
    message_id: str
    # What the relay's log line and metrics name (not sent: the body says it all).
    event_type: str = ""
    case_id: str = ""


class BrokerRefused(ConnectionError):
    """The broker did not confirm a publication (nack or no answer in time)."""


class ConfirmedPublisher:
    """Publishes batches and returns only once the broker confirmed every message.

    Confirms are batched: the messages go out back to back and the acks (which RabbitMQ
    sends with `multiple` set) are counted afterwards, instead of one round trip each."""

    def __init__(self, amqp_uri: str, *, confirm_timeout: float = 30.0,
                 exchange: kombu.Exchange = topology.EVENTS, stamp_user: bool = True):
        self.amqp_uri = amqp_uri
        self.exchange = exchange
        self.confirm_timeout = confirm_timeout
        # Every message carries the broker user it was published as, which RabbitMQ checks
        # against the connection's: consumers believe its source from that alone.
        self.user_id = kombu.Connection(amqp_uri).userid if stamp_user else None
        self.connection: kombu.Connection | None = None
        self.channel = None
        self.published = 0  # delivery tags issued on this channel
        self.acked = 0
        self.nacked = False

    def _open(self) -> None:
        self.connection = kombu.Connection(self.amqp_uri, heartbeat=0)
        self.connection.ensure_connection(max_retries=1)
        self.channel = self.connection.channel()
        self.exchange(self.channel).declare()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.published = self.acked = 0
        self.nacked = False

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self.acked = max(self.acked, delivery_tag) if multiple else self.acked + 1

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked = True

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        try:
            if self.connection is None:
                self._open()
            producer = kombu.Producer(self.channel, exchange=self.exchange)
            for message in messages:
                producer.publish(
                    message.body,
                    routing_key=message.routing_key,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    headers=message.headers,
                    message_id=message.message_id,
                    **({"user_id": self.user_id} if self.user_id else {}),
                )
            self.published += len(messages)
            deadline = time.monotonic() + self.confirm_timeout
            while self.acked < self.published and not self.nacked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BrokerRefused("no confirm from the broker in time")
                self.connection.drain_events(timeout=remaining)
            if self.nacked:
                raise BrokerRefused("the broker refused a message")
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:  # already broken; we only want it gone
                pass
        self.connection = None
        self.channel = None


def outgoing(source: str, app: Application, notifications: Sequence[Notification]):
    """The public messages for a batch of stored notifications, in log order."""
    for notification in notifications:
        envelope = public_event(source, notification.id, app.mapper.to_domain_event(notification))
        if envelope is None:
            continue
        yield OutgoingMessage(
            routing_key=routing_key(envelope["event_type"], envelope["location"],
                                    envelope["sensitive"]),
            body=json.dumps(envelope, ensure_ascii=False).encode(),
            headers={"ourvoice-source": source, "ourvoice-position": notification.id},
            message_id=envelope["event_id"],
            event_type=envelope["event_type"],
            case_id=envelope["case_id"],
        )


class Relay:
    """The handler a LogFollower calls for each batch of an event store's log."""

    def __init__(self, source: str, app: Application, publisher: ConfirmedPublisher):
        self.source = source
        self.app = app
        self.publisher = publisher
        self.chain = RelayCheck(source)

    def __call__(self, cursor, notifications: Sequence[Notification]) -> int:
        """Publishes the leading notifications whose links hold; returns how many, so
        the follower's position stops before one that does not."""
        held, stop = self.chain.holding(cursor, notifications)
        messages = list(outgoing(self.source, self.app, held))
        self.publisher.publish(messages)
        self.chain.record(cursor, held, stop)
        metrics.published(self.source, (message.event_type for message in messages))
        for message in messages:
            log.info("published %s", message.event_type,
                     extra={"event_id": message.message_id, "case_id": message.case_id})
        return len(held)

    def caught_up(self, cursor) -> None:
        self.chain.caught_up(cursor)
