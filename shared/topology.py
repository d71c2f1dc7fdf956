"""Exchanges and queues on RabbitMQ, declared the same way by every service.

`ourvoice setup` declares the whole topology before the services start, so that every
queue exists (and keeps messages) before its consumer first runs: an event published
while routing is down waits for routing instead of being dropped by the exchange. Each
service then declares only what is its own, which is all its broker user may declare."""

from __future__ import annotations

from kombu import Exchange, Queue, binding

from shared.events import EVENT_TYPES, EXCHANGE

EVENTS = Exchange(EXCHANGE, type="topic", durable=True)
DEAD_LETTERS = Exchange("ourvoice.dead-letters", type="direct", durable=True)

# The outcomes of notifications are for office systems and auditors: no service acts on
# them, and a backlog of messages sent would come back as as many events again to every
# queue bound to all. A reading of the case file is the citizen's timeline's alone.
OUTCOMES = ("NotificationSent", "NotificationFailed")


def every_event_but(*left_out: str) -> tuple[str, ...]:
    return tuple(kind for kind in EVENT_TYPES if kind not in left_out)


# Which events each service consumes, by type (new types reach those that take all but
# some). Office systems bind their own queues.
TAKES: dict[str, tuple[str, ...]] = {
    "intake": every_event_but(*OUTCOMES),
    "routing": ("CaseSubmitted", "InformationProvided", "FeedbackReceived", "CaseAppealed",
                "CaseWithdrawn"),
    "notifications": every_event_but(*OUTCOMES, "CaseFileOpened"),
    "reporting": every_event_but(*OUTCOMES, "CaseFileOpened"),
}
# A routing key starts with the event type (see shared.events.routing_key).
SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    service: tuple(f"{kind}.#" for kind in kinds) for service, kinds in TAKES.items()}
# What earlier versions bound and `ourvoice setup` takes away (a queue keeps a binding
# until it is removed, whatever its consumers declare).
RETIRED_BINDINGS: dict[str, tuple[str, ...]] = {
    "intake": ("#",), "notifications": ("#",), "reporting": ("#",)}


# The services that publish events, each those of the store of the same name: an event
# whose `ourvoice-source` is one of these is taken only from that service's broker user.
PUBLISHERS = ("intake", "routing", "notifications")
# Signed checkpoints of the hash chains go to auditors on an exchange of their own, made
# by the one service that takes them (see shared/checkpoint.py).
AUDIT = Exchange("ourvoice.audit", type="topic", durable=True)
CHECKPOINTER = "reporting"


def queue_name(service: str) -> str:
    return f"ourvoice.{service}"


def dead_letter_queue_name(service: str) -> str:
    return f"ourvoice.{service}.dead-letters"


def service_queue(service: str) -> Queue:
    """A quorum queue (replicated once RabbitMQ is clustered) that dead-letters what its
    consumer rejects into the service's own dead-letter queue."""
    return Queue(
        queue_name(service),
        bindings=[binding(EVENTS, routing_key=key) for key in SUBSCRIPTIONS[service]],
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": DEAD_LETTERS.name,
            "x-dead-letter-routing-key": queue_name(service),
        },
    )


def dead_letter_queue(service: str) -> Queue:
    return Queue(
        dead_letter_queue_name(service),
        exchange=DEAD_LETTERS,
        routing_key=queue_name(service),
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


# nameko's RPC: its exchange, and a service's queue of requests as nameko names and binds
# it, but a quorum queue. nameko's own is a classic queue, which lives on the one node
# that first declared it: with that node down, no instance of the service could take a
# request, nor declare the queue again on another node.
RPC = Exchange("nameko-rpc", type="topic", durable=True)


def rpc_queue(service: str) -> Queue:
    return Queue(f"rpc-{service}", exchange=RPC, routing_key=f"{service}.*", durable=True,
                 queue_arguments={"x-queue-type": "quorum"})


def subscriber_queue_name(name: str) -> str:
    return f"ourvoice.subscriber.{name}"


def subscriber_queue(name: str, keys: list[str], *, checkpoints: bool = False) -> Queue:
    """An office system's queue: durable, so that what arrives while it is away waits.
    An auditors' system may take the signed checkpoints of the hash chains as well (or
    only those), which are all that `ourvoice.audit` carries."""
    bindings = [binding(EVENTS, routing_key=key) for key in keys]
    if checkpoints:
        bindings.append(binding(AUDIT, routing_key="#"))
    return Queue(subscriber_queue_name(name), durable=True, bindings=bindings)


def declare(channel) -> None:
    """Everything the services use (with the operator's credentials)."""
    EVENTS(channel).declare()
    DEAD_LETTERS(channel).declare()
    for service in SUBSCRIPTIONS:
        queue = service_queue(service)(channel)
        queue.declare()
        for key in RETIRED_BINDINGS.get(service, ()):
            channel.queue_unbind(queue.name, EVENTS.name, key)  # no error when not there
        dead_letter_queue(service)(channel).declare()
