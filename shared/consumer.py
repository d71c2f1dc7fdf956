"""The idempotent consumer: how every service reads `ourvoice.events`.

`@on_events(service)` makes a nameko method consume the service's quorum queue. The
service keeps its Database dependency as `self.db`. The method receives the validated
envelope and a `Tracking` for (source, position); it must commit that tracking in the
same transaction as the events it records (`store.record(..., tracking=tracking)`). A
redelivered message then finds its tracking row and changes nothing.

`@on_event_batches(service)` is for read models kept from the events alone: the method
receives a cursor and the (source, envelope) pairs of the messages delivered so far (a
read model's `apply`), in a transaction the consumer opened and in which it recorded
their tracking rows; pairs whose rows were there already are left out, so a redelivered
batch changes nothing. A batch is whatever the broker has delivered when the last one is
done, never a wait for more: one message alone when traffic is light. One transaction
and one acknowledgement per batch; a batch that fails is split until the failing message
is found, and that one alone is treated as below.

`@on_recorded_batches(service)` is the same for a consumer that records events: the
method receives the (envelope, tracking) pairs delivered so far, in the order they came,
and records what they call for with all their trackings in one transaction of its store
(`store.record(..., trackings=...)`). A redelivered message's tracking row fails that
transaction; the batch is then recorded again without the messages found done, and split
as above only if it fails still. Messages that must wait for one not processed yet are
left out by the method, which records the rest and returns the trackings of those that
wait with why (`{tracking: reason}`); they are treated as `NotYet` below, without
failing the batch.

What happens to a message, on purpose:
- handled, or already handled: acknowledged;
- not a public event we can read: rejected, so RabbitMQ moves it to the dead letters;
- not published by the broker user of the service that owns its source (the `user_id`
  property, which the broker checks): rejected and counted, whatever its headers say;
- the database or broker is unreachable: retried in place with backoff, then requeued;
- it depends on an event not processed yet (`NotYet`): requeued after a short pause
  (logged once per wait, as the normal thing it is, not as an error), and
  dead-lettered once it has waited longer than any real predecessor could take; those a
  batch's `@on_recorded_batches` method left to wait go back without a pause when others
  of the batch were done (the next batch is work enough), after one when none was;
- any other failure: rejected to the dead letters, where operators see it."""

from __future__ import annotations

import json
import logging
import random
import socket
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import amqp.exceptions
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
# How long a message that waits is held before it goes back, so that the one it waits
# for can arrive first instead of the two circling.
WAIT_PAUSE_SECONDS = 0.2
# No public event comes near this size; anything bigger is refused unread.
MAX_MESSAGE_BYTES = 256 * 1024
# What the broker may hand a batch consumer before it acknowledges any, and the most one
# batch takes: with half of it in a batch, the next batch is being delivered meanwhile.
BATCH_PREFETCH = 400
MAX_BATCH = 200


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
    # kombu waits for the broker this long at a time (its own default: 1 s) and looks
    # between two waits whether to cancel a consumer or stop: a stop takes two or three
    # such looks in turn, which must end well within the service's stop time.
    LOOK_SECONDS = 0.2

    def consume(self, limit=None, timeout=None, safety_interval=LOOK_SECONDS, **kwargs):
        return super().consume(limit, timeout, safety_interval, **kwargs)

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
        # Delivery tags handed over and not yet settled, by channel: what tells whether
        # one acknowledgement of many is safe (see ack_together).
        self.outstanding: dict[object, set[int]] = {}
        self.stopping = threading.Event()

    def start(self):
        super().start()
        self.container.spawn_managed_thread(self._watch, identifier="queue watch")

    def stop(self):
        self.stopping.set()  # the watch ends at once, instead of being killed after
        super().stop()

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self.live = connection
        super().on_consume_ready(connection, channel, consumers, **kwargs)

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            consumer = consumer_cls(
                queues=[provider.queue],
                on_message=partial(self.handle_message, provider, None),
            )
            # A service has one event queue, so its consumer's prefetch is the channel's
            # (RabbitMQ gives consumers the prefetch last set before they start).
            consumer.qos(prefetch_count=provider.prefetch or self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()

    def handle_message(self, provider, body, message):
        self.outstanding.setdefault(message.channel, set()).add(message.delivery_tag)
        provider.handle_message(body, message)

    def _settle(self, message, settle) -> None:
        self._forget(message)
        super()._settle(message, settle)

    def _forget(self, message) -> None:
        tags = self.outstanding.get(message.channel)
        if tags is not None:
            tags.discard(message.delivery_tag)
            if not tags:
                del self.outstanding[message.channel]

    def ack_together(self, messages) -> None:
        """Acknowledge `messages` with one basic.ack per channel: the highest delivery
        tag, `multiple`. That acknowledges every delivery on the channel up to that tag,
        so it is sent only when each of those not among `messages` is settled already;
        a batch consumer settles in delivery order and its failed messages first, so it
        always is. Should it ever not be, each message is acknowledged alone instead."""
        by_channel = defaultdict(list)
        for message in messages:
            by_channel[message.channel].append(message)
        for channel, group in by_channel.items():
            tags = {message.delivery_tag for message in group}
            last = max(group, key=lambda message: message.delivery_tag)
            others = [tag for tag in self.outstanding.get(channel, ())
                      if tag <= last.delivery_tag and tag not in tags]
            if others:
                log.warning("deliveries %s are not settled yet; acknowledging %d messages "
                            "one by one", sorted(others)[:10], len(group))
                for message in group:
                    self.ack_message(message)
                continue
            for message in group:
                self._forget(message)
            self._settle(last, partial(last.ack, multiple=True))

    def _watch(self) -> None:
        unconsumed = set()
        while not self.stopping.wait(self.WATCH_SECONDS):
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
    # The broker's prefetch for this consumer; None: one message per worker.
    prefetch: int | None = None

    def __init__(self, service: str, **kwargs):
        super().__init__(topology.service_queue(service), **kwargs)
        self.service = service

    def handle_message(self, body, message):
        taken = self.read(message)
        if taken is None:
            return
        event, tracking = taken
        metrics.unsettled_changed(self.queue.name, +1)
        try:
            self.container.spawn_worker(
                self, (event, tracking), {},
                handle_result=partial(self.handle_result, message, event, time.perf_counter()))
        except ContainerBeingKilled:
            metrics.unsettled_changed(self.queue.name, -1)
            self.queue_consumer.requeue_message(message)

    def read(self, message) -> tuple[dict, Tracking] | None:
        """The message's envelope and (source, position); None for one settled at once
        (malformed, or not published by its source's service)."""
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
            return None
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
            return None
        return event, tracking

    def handle_result(self, message, event, started, worker_ctx, result=None, exc_info=None):
        """In the worker's green thread, once the handler returned: settle the message,
        count it and say so (the event's ids are on the line)."""
        try:
            outcome = self.handle_message_processed(message, result, exc_info)
        finally:
            metrics.unsettled_changed(self.queue.name, -1)
        self.settled(event, outcome, started)
        return result, exc_info

    def settled(self, event: dict, outcome: str, started: float) -> None:
        seconds = time.perf_counter() - started
        metrics.event_settled(event["event_type"], outcome, seconds)
        # A wait is tried again every moment, and said once already (see _log_wait).
        log.log(logging.DEBUG if outcome == "waiting" else logging.INFO,
                "%s %s in %.0f ms", event["event_type"], outcome, seconds * 1000,
                extra={"event_id": event["event_id"], "case_id": event["case_id"]})

    def handle_message_processed(self, message, result=None, exc_info=None) -> str:
        """Settles the message; returns what became of it."""
        outcome = outcome_of(result, exc_info)
        self.settle(message, outcome)
        return outcome

    def settle(self, message, outcome: str) -> None:
        if outcome in ("waiting", "requeued"):
            self.queue_consumer.requeue_message(message)
        elif outcome == "handled":
            self.queue_consumer.ack_message(message)
        else:
            self.queue_consumer.reject_message(message)


def outcome_of(result=None, exc_info=None) -> str:
    """What becomes of a message, from what its handling returned or raised."""
    if exc_info is None and isinstance(result, Waiting):
        return "waiting"
    elif exc_info is None:
        return "handled"
    elif issubclass(exc_info[0], (ConnectionError, NotYet)) or transient(exc_info[1]):
        return "requeued"
    else:
        return "dead-lettered"


@dataclass
class Delivery:
    message: object
    event: dict
    tracking: Tracking
    started: float = field(default_factory=time.perf_counter)


class EventBatchConsumer(EventConsumer):
    """Takes delivered messages in batches, one batch at a time: messages are settled in
    the order they came, which is what lets one acknowledgement settle a whole batch."""

    prefetch = BATCH_PREFETCH

    def __init__(self, service: str, **kwargs):
        super().__init__(service, **kwargs)
        self.delivered: list[Delivery] = []
        self.taking = False  # a batch is in a worker

    def handle_message(self, body, message):
        taken = self.read(message)
        if taken is None:
            return
        metrics.unsettled_changed(self.queue.name, +1)
        self.delivered.append(Delivery(message, *taken))
        if not self.taking:
            # Taken once this green thread yields: the messages kombu has already read
            # from the socket are delivered first, and go in the same batch.
            self.taking = True
            self.container.spawn_managed_thread(self.take, identifier="batch")

    def take(self) -> None:
        """Hand what was delivered so far (up to MAX_BATCH) to a worker."""
        batch, self.delivered = self.delivered[:MAX_BATCH], self.delivered[MAX_BATCH:]
        metrics.batch_taken(self.queue.name, len(batch))
        try:
            self.container.spawn_worker(
                self, ([(d.event, d.tracking) for d in batch],), {},
                handle_result=partial(self.handle_batch_result, batch))
        except ContainerBeingKilled:
            for delivery in batch + self.delivered:
                metrics.unsettled_changed(self.queue.name, -1)
                self.queue_consumer.requeue_message(delivery.message)
            self.delivered, self.taking = [], False

    def handle_batch_result(self, batch: list[Delivery], worker_ctx, result=None,
                            exc_info=None):
        """In the worker's green thread: settle the batch (what failed first, then one
        acknowledgement of the rest), then hand on what was delivered meanwhile. The
        next worker is spawned before this one ends, so a stopping container waits for
        it too."""
        if exc_info is not None:
            # Not the handler's failure (each message's is caught and settled below):
            # ours. Nothing was committed that the tracking rows would not catch.
            log.error("a batch of %d failed as a whole; putting it back", len(batch),
                      exc_info=exc_info)
            outcomes = ["requeued"] * len(batch)
        else:
            outcomes = result
        try:
            handled = []
            for delivery, outcome in zip(batch, outcomes, strict=True):
                if outcome == "handled":
                    handled.append(delivery.message)
                else:
                    self.settle(delivery.message, outcome)
            self.queue_consumer.ack_together(handled)
            for delivery, outcome in zip(batch, outcomes, strict=True):
                metrics.unsettled_changed(self.queue.name, -1)
                self.settled(delivery.event, outcome, delivery.started)
        finally:
            # Whatever happened above, the queue goes on. Nothing between looking and
            # deciding yields to the green thread that delivers.
            if self.delivered:
                self.take()
            else:
                self.taking = False
        return result, exc_info


def on_events(service: str):
    """Consume the service's queue, once per (source, position)."""

    def decorate(handler):
        return EventConsumer.decorator(service)(_exactly_once(service, handler))

    return decorate


def on_event_batches(service: str):
    """Consume the service's queue in batches, once per (source, position): the method
    is `handler(self, cursor, pairs)`, with the (source, envelope) pairs to apply in the
    cursor's transaction."""

    def decorate(handler):
        return EventBatchConsumer.decorator(service)(_each_once(service, handler))

    return decorate


def on_recorded_batches(service: str):
    """Consume the service's queue in batches, once per (source, position): the method
    is `handler(self, taken)`, with the (envelope, tracking) pairs to record, with every
    tracking, in one transaction of its store."""

    def decorate(handler):
        return EventBatchConsumer.decorator(service)(_recorded_once(service, handler))

    return decorate


def _exactly_once(service: str, handler):
    """Wait out outages of the database, and treat a conflict on the tracking row as
    already processed."""

    def wrapper(self, event, tracking):
        conflicts = 0
        while True:
            try:
                # No look-up first: redeliveries are rare, and the tracking row's primary
                # key refuses a second effect anyway.
                result = _through_outages(lambda: handler(self, event, tracking),
                                          event["event_id"])
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
                result = _wait(event, waiting)
                time.sleep(WAIT_PAUSE_SECONDS)  # let the one it waits for arrive first
                return result

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def _wait(event: dict, waiting: NotYet) -> Waiting:
    """A message that waits for one not processed yet: to be put back, its wait logged
    once; Orphaned once it has waited longer than any real predecessor could take."""
    age = (datetime.now(UTC) - event["occurred_at"]).total_seconds()
    if age > WAIT_FOR_PREDECESSOR_SECONDS:
        _waiting.pop(str(event["event_id"]), None)
        raise Orphaned(f"{waiting} (still, after {age:.0f}s)") from None
    _log_wait(event, waiting)
    return Waiting(str(waiting))


def _through_outages(attempt, what):
    """`attempt()`, tried again while the database is unreachable, for a while."""
    deadline = time.monotonic() + RETRY_FOR_SECONDS
    backoff = 0.1
    while True:
        try:
            return attempt()
        except Exception as error:
            if not transient(error) or time.monotonic() > deadline:
                raise
            log.warning("database unavailable; retrying %s", what)
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


def _each_once(service: str, handler):
    """A batch in one transaction with its tracking rows (see `_in_halves`)."""

    def apply(self, part):
        with self.db.tracked(service, [tracking for _, tracking in part]) as (cursor, new):
            pairs, seen = [], set()
            for event, tracking in sorted(part, key=lambda taken: _key(taken[1])):
                if _key(tracking) in new and _key(tracking) not in seen:
                    seen.add(_key(tracking))  # the same message twice in one batch
                    pairs.append((tracking.application_name, event))
            if pairs:
                handler(self, cursor, pairs)

    return _in_halves(service, handler, apply)


def _recorded_once(service: str, handler):
    """A batch recorded by the handler in one transaction of its store, in the order it
    came (a case's submission before what followed it), each message once (see
    `_in_halves`)."""

    def apply(self, part) -> dict[tuple[str, int], str]:
        taken, seen = [], set()
        for event, tracking in part:
            if _key(tracking) not in seen:  # the same message twice in one batch
                seen.add(_key(tracking))
                taken.append((event, tracking))
        try:
            waits = handler(self, taken)
        except (IntegrityError, psycopg.IntegrityError):
            # Most likely messages recorded before and delivered again (a batch that was
            # committed but not acknowledged): those are left out and the rest recorded,
            # rather than the batch split down to each of them.
            done = self.db.tracked_already(service, [tracking for _, tracking in taken])
            if not done:
                raise
            rest = [(event, tracking) for event, tracking in taken if _key(tracking) not in done]
            waits = handler(self, rest) if rest else None
        return {_key(tracking): reason for tracking, reason in (waits or {}).items()}

    return _in_halves(service, handler, apply)


def _in_halves(service: str, handler, apply):
    """`apply(self, part)` of a whole batch; if it fails, of its halves, down to the one
    message that fails, which is then handled alone as `on_events` handles any message
    (waits, conflicts, dead letters). `apply` may return the (source, position) of
    messages it left to wait, with why. Returns what became of each message, in the
    batch's order."""

    def one(self, event, tracking):
        waits = apply(self, [(event, tracking)])
        if waits:
            raise NotYet(next(iter(waits.values())))

    alone = _exactly_once(service, one)

    def take(self, part) -> list[str]:
        if len(part) == 1:
            try:
                return [outcome_of(alone(self, *part[0]))]
            except Exception:
                outcome = outcome_of(exc_info=sys.exc_info())
                log.log(logging.ERROR if outcome == "dead-lettered" else logging.WARNING,
                        "%s failed alone", part[0][0]["event_type"], exc_info=True,
                        extra={"event_id": part[0][0]["event_id"],
                               "case_id": part[0][0]["case_id"]})
                return [outcome]
        try:
            waits = _through_outages(lambda: apply(self, part), f"a batch of {len(part)}") or {}
        except Exception as error:
            failed = error
        else:
            return outcomes_with(part, waits)
        if transient(failed):
            return ["requeued"] * len(part)  # the database stayed away
        # Outside the except clause, so that what fails later is not chained to this.
        log.info("a batch of %d failed (%s); trying its halves", len(part), str(failed)[:200])
        middle = len(part) // 2
        return take(self, part[:middle]) + take(self, part[middle:])

    def outcomes_with(part, waits: dict[tuple[str, int], str]) -> list[str]:
        """A part applied: what became of each message, those left to wait waiting."""
        outcomes = []
        for event, tracking in part:
            if _key(tracking) not in waits:
                _waiting.pop(str(event["event_id"]), None)
                outcomes.append("handled")
                continue
            try:
                outcomes.append(outcome_of(_wait(event, NotYet(waits[_key(tracking)]))))
            except Orphaned:
                log.error("%s waited too long", event["event_type"], exc_info=True,
                          extra={"event_id": event["event_id"], "case_id": event["case_id"]})
                outcomes.append("dead-lettered")
        if all(outcome == "waiting" for outcome in outcomes):
            time.sleep(WAIT_PAUSE_SECONDS)  # nothing was done: as one message that waits
        return outcomes

    def wrapper(self, batch):
        return take(self, list(batch))

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def _key(tracking: Tracking) -> tuple[str, int]:
    return tracking.application_name, tracking.notification_id


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
