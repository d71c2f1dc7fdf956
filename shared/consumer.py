"""The idempotent consumer: how every service reads `ourvoice.events`.

`@on_events(service)` makes a nameko method consume the service's quorum queue. The
service keeps its Database dependency as `self.db`. The method receives the validated
envelope and a `Tracking` for (source, position); it must
commit that tracking in the same transaction as its own writes, either with the events it
records (`store.record(..., tracking=tracking)`) or with its read-model rows
(`ReadModel.tracked`). A redelivered message then finds its tracking row and changes
nothing.

What happens to a message, on purpose:
- handled, or already handled: acknowledged;
- not a public event we can read: rejected, so RabbitMQ moves it to the dead letters;
- not published by the broker user of the service that owns its source (the `user_id`
  property, which the broker checks): rejected and counted, whatever its headers say;
- the database or broker is unreachable: retried in place with backoff, then requeued;
- it depends on an event not processed yet (`NotYet`): requeued after a short pause
  (logged once per wait, as the normal thing it is, not as an error), and
  dead-lettered once it has waited longer than any real predecessor could take;
- any other failure: rejected to the dead letters, where operators see it."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from datetime import UTC, datetime
from functools import partial

import amqp.exceptions
import eventlet
import kombu
import psycopg
from eventsourcing.persistence import IntegrityError, Tracking
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer, QueueConsumer

from shared import metrics, topology
from shared.config import broker_user
from shared.db import transient
from shared.events import MalformedEvent, read_event
from shared.settings import masked_urls

log = logging.getLogger(__name__)

RETRY_FOR_SECONDS = 30.0
# How often an event is handled again when the aggregate it changes was changed by
# someone else at the same moment (an office's action, a reading of the case file).
MAX_CONFLICTS = 20
# A message that still depends on a missing one after this long never will: a forged or
# orphaned event. It goes to the dead letters instead of circling forever.
WAIT_FOR_PREDECESSOR_SECONDS = 300.0
# No public event comes near this size; anything bigger is refused unread.
MAX_MESSAGE_BYTES = 256 * 1024


# Events refused in this process because their publisher was not their source's service:
# shown by /health, so that operators see forging attempts without reading the logs.
refused = {"events": 0}


def published_by_owner(source: str, user_id: str | None) -> bool:
    """Whether the broker vouches that the service owning the store `source` published
    the message: `user_id` is checked by RabbitMQ against the publishing connection."""
    return source in topology.PUBLISHERS and user_id == broker_user(source)


class NotYet(Exception):
    """The message depends on one not processed yet (competing consumers can take events
    of one case out of order): put it back to be tried again shortly."""


class Orphaned(Exception):
    """The message waited too long for the one it depends on (dead-lettered)."""


class Waiting:
    """What a handler's worker returns for a message that waits (`NotYet`): waiting is
    part of normal operation, so nameko must not see an error (it would log a traceback
    for each try); the consumer puts the message back instead of acknowledging it."""

    def __init__(self, reason: str):
        self.reason = reason


# Events waiting now, so that a wait is logged once, not at every one of its tries.
_waiting: dict[str, None] = {}
MAX_WAITING_REMEMBERED = 10_000


class KeptConnection:
    """The one AMQP connection a process keeps for looking at the broker (the queue
    watch, the health probes): opened when first needed and again only after it broke,
    never one per look, so probing a service often costs the broker nothing."""

    def __init__(self, amqp_uri: str, timeout: float = 2.0):
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self.connection: kombu.Connection | None = None
        self.channel = None
        # Green under eventlet: one look at a time on the channel, the others wait.
        self.lock = threading.Lock()

    def use(self, look):
        """`look(channel)`'s answer; a kept connection found broken is opened again once."""
        with self.lock:
            for reopened in (False, True):
                fresh = self.connection is None
                try:
                    if fresh:
                        self._open()
                    return look(self.channel)
                except Exception:
                    self.close()
                    if fresh or reopened:
                        raise

    def _open(self) -> None:
        self.connection = kombu.Connection(
            self.amqp_uri, connect_timeout=self.timeout, heartbeat=0,
            transport_options={"read_timeout": self.timeout, "write_timeout": self.timeout})
        self.connection.ensure_connection(max_retries=1)
        self.channel = self.connection.channel()

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:  # already broken; we only want it gone
                pass
        self.connection = self.channel = None


_kept: dict[str, KeptConnection] = {}


def kept_connection(amqp_uri: str) -> KeptConnection:
    """This process's kept connection to the broker at `amqp_uri`."""
    if amqp_uri not in _kept:
        _kept[amqp_uri] = KeptConnection(amqp_uri)
    return _kept[amqp_uri]


def broker_answers(amqp_uri: str) -> None:
    """Raises unless the broker answers a round trip on the kept connection (basic.qos
    asks no permission and changes nothing on a channel that consumes nothing)."""
    kept_connection(amqp_uri).use(lambda channel: channel.basic_qos(0, 0, False))


class SettlingQueueConsumer(QueueConsumer):
    """nameko's queue consumer, except that an ack or requeue that cannot be sent because
    the broker just dropped the connection (a restart) is let go instead of killing the
    service: the broker has taken the message back already and delivers it again, and
    every consumer of ours treats a redelivery as done."""

    # nameko lets only amqp's own ConnectionError go; a reset socket raises the OS's.
    GONE = (OSError, amqp.exceptions.ConnectionError)

    def on_connection_error(self, exc, interval):
        # nameko's own masks the password of the first URL only; AMQP_URI may list every
        # node of a cluster, each with the service's password.
        log.warning("cannot reach the broker at %s (%s); trying again in %s s",
                    masked_urls(self.amqp_uri), exc, interval)

    def ack_message(self, message):
        self._settle(message, message.ack)

    def requeue_message(self, message):
        self._settle(message, message.requeue)

    def reject_message(self, message):
        """Rejected without requeueing: RabbitMQ moves it to the queue's dead letters."""
        self._settle(message, partial(message.reject, requeue=False))

    def _settle(self, message, settle) -> None:
        if message.channel.connection:
            try:
                settle()
            except self.GONE as error:
                log.info("the broker went away before a message was settled (%s); it will "
                         "deliver it again", error)


class RawQueueConsumer(SettlingQueueConsumer):
    """nameko's queue consumer, handing over undecoded messages: a body that is not JSON
    or has an unexpected content type must reach us to be dead-lettered, instead of
    raising inside kombu's drain loop.

    It also watches that the broker still counts it as a consumer. After a broker restart
    RabbitMQ can leave a queue without the consumer the client just registered (the client
    sees nothing wrong, messages pile up); when the service's queue is seen with no
    consumer twice in a row, the connection is dropped so that kombu connects and
    subscribes again."""

    WATCH_SECONDS = 10.0

    def __init__(self):
        super().__init__()
        self.live = None  # the connection consuming now, once kombu made it

    def start(self):
        super().start()
        self.container.spawn_managed_thread(self._watch, identifier="queue watch")

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self.live = connection
        super().on_consume_ready(connection, channel, consumers, **kwargs)

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            consumer = consumer_cls(
                queues=[provider.queue],
                on_message=partial(self.handle_message, provider, None),
            )
            consumer.qos(prefetch_count=self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()

    def handle_message(self, provider, body, message):
        provider.handle_message(body, message)

    def _watch(self) -> None:
        unconsumed = set()
        while True:
            eventlet.sleep(self.WATCH_SECONDS)
            try:
                seen = {queue.name for queue in self._queues_without_consumer()}
            except Exception as error:  # the broker is down: kombu reconnects by itself
                log.debug("could not look at the queues: %s", error)
                continue
            if seen & unconsumed and self.live is not None:
                log.warning("the broker counts no consumer on %s; subscribing again",
                            ", ".join(sorted(seen & unconsumed)))
                self._drop(self.live)
                seen = set()
            unconsumed = seen

    def _queues_without_consumer(self) -> list:
        """The service's queues the broker counts no consumer on; and how many messages
        wait in each, for the metrics."""

        def look(channel):
            found = []
            for provider in self._providers:
                declared = provider.queue(channel).queue_declare(passive=True)
                metrics.waiting_in_queue(provider.queue.name, declared.message_count)
                if declared.consumer_count == 0:
                    found.append(provider.queue)
            return found

        return kept_connection(self.amqp_uri).use(look)

    @staticmethod
    def _drop(connection) -> None:
        """Shut the socket under the consuming connection: its drain loop fails and
        kombu's reconnects, declaring the consumers again."""
        try:
            connection.connection.sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass  # already gone


class EventConsumer(Consumer):
    queue_consumer = RawQueueConsumer()

    def __init__(self, service: str, **kwargs):
        super().__init__(topology.service_queue(service), **kwargs)
        self.service = service

    def handle_message(self, body, message):
        try:
            if len(message.body) > MAX_MESSAGE_BYTES:
                raise MalformedEvent(f"{len(message.body)} bytes is more than any event")
            event = read_event(json.loads(message.body))
            tracking = Tracking(
                application_name=str(message.headers["ourvoice-source"]),
                notification_id=int(message.headers["ourvoice-position"]),
            )
        except (MalformedEvent, ValueError, KeyError, TypeError, UnicodeDecodeError,
                RecursionError) as error:  # RecursionError: JSON nested too deep
            log.warning("dead-lettering a malformed message: %s", str(error)[:300])
            self.queue_consumer.reject_message(message)
            metrics.event_settled("malformed", "dead-lettered")
            return
        publisher = message.properties.get("user_id")
        source = tracking.application_name
        if not published_by_owner(source, publisher):
            # Headers are anyone's to write; only the broker vouches for who published.
            # Dropped before its (source, position) is tracked, so a forgery at the next
            # positions cannot make the real event look already processed.
            refused["events"] += 1
            log.warning("dead-lettering an event claiming source %r published by broker "
                        "user %r", source[:100], str(publisher)[:100])
            self.queue_consumer.reject_message(message)
            metrics.event_settled(event["event_type"], "refused")
            return
        metrics.unsettled_changed(self.queue.name, +1)
        try:
            self.container.spawn_worker(
                self, (event, tracking), {},
                handle_result=partial(self.handle_result, message, event, time.perf_counter()))
        except ContainerBeingKilled:
            metrics.unsettled_changed(self.queue.name, -1)
            self.queue_consumer.requeue_message(message)

    def handle_result(self, message, event, started, worker_ctx, result=None, exc_info=None):
        """In the worker's green thread, once the handler returned: settle the message,
        count it and say so (the event's ids are on the line)."""
        try:
            outcome = self.handle_message_processed(message, result, exc_info)
        finally:
            metrics.unsettled_changed(self.queue.name, -1)
        seconds = time.perf_counter() - started
        metrics.event_settled(event["event_type"], outcome, seconds)
        # A wait is tried again every moment, and said once already (see _log_wait).
        log.log(logging.DEBUG if outcome == "waiting" else logging.INFO,
                "%s %s in %.0f ms", event["event_type"], outcome, seconds * 1000,
                extra={"event_id": event["event_id"], "case_id": event["case_id"]})
        return result, exc_info

    def handle_message_processed(self, message, result=None, exc_info=None) -> str:
        """Settles the message; returns what became of it."""
        if exc_info is None and isinstance(result, Waiting):
            self.queue_consumer.requeue_message(message)
            return "waiting"
        elif exc_info is None:
            self.queue_consumer.ack_message(message)
            return "handled"
        elif issubclass(exc_info[0], (ConnectionError, NotYet)) or transient(exc_info[1]):
            self.queue_consumer.requeue_message(message)
            return "requeued"
        else:
            self.queue_consumer.reject_message(message)
            return "dead-lettered"


def on_events(service: str):
    """Consume the service's queue, once per (source, position)."""

    def decorate(handler):
        return EventConsumer.decorator(service)(_exactly_once(service, handler))

    return decorate


def _exactly_once(service: str, handler):
    """Wait out outages of the database, and treat a conflict on the tracking row as
    already processed."""

    def wrapper(self, event, tracking):
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        backoff = 0.1
        conflicts = 0
        while True:
            try:
                # No look-up first: redeliveries are rare, and the tracking row's primary
                # key refuses a second effect anyway.
                result = handler(self, event, tracking)
                _waiting.pop(str(event["event_id"]), None)
                return result
            except (IntegrityError, psycopg.IntegrityError):
                if self.db.has_tracking(service, tracking):
                    return None  # another instance processed it at the same moment
                # The aggregate changed under us: the handler reads it again and decides
                # again (a citizen's answer must not be lost to a reading of the file).
                conflicts += 1
                if conflicts > MAX_CONFLICTS:
                    raise
                time.sleep(random.uniform(0, 0.005 * conflicts))
            except NotYet as waiting:
                age = (datetime.now(UTC) - event["occurred_at"]).total_seconds()
                if age > WAIT_FOR_PREDECESSOR_SECONDS:
                    _waiting.pop(str(event["event_id"]), None)
                    raise Orphaned(f"{waiting} (still, after {age:.0f}s)") from None
                _log_wait(event, waiting)
                time.sleep(0.2)  # let the event it waits for arrive before it comes back
                return Waiting(str(waiting))
            except Exception as error:
                if not transient(error) or time.monotonic() > deadline:
                    raise
                log.warning("database unavailable; retrying %s", event["event_id"])
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def _log_wait(event: dict, waiting: NotYet) -> None:
    """The first try of a wait at INFO, the tries after it at DEBUG."""
    key = str(event["event_id"])
    if key in _waiting:
        log.debug("%s %s still waits: %s", event["event_type"], key, waiting)
        return
    if len(_waiting) >= MAX_WAITING_REMEMBERED:
        _waiting.pop(next(iter(_waiting)))
    _waiting[key] = None
    log.info("%s %s waits: %s; it is tried again shortly", event["event_type"], key, waiting)
