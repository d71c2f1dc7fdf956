"""What a service counts for its operators, exposed at `GET /metrics` in Prometheus's text
format.

Each service is one process, and nameko's workers in it are green threads of eventlet:
the metrics live in the process's one registry, and prometheus-client's locks are
`threading` locks, which eventlet's monkey patching (done before anything is imported,
see runner.py) turns into green ones. An increment never yields while it holds one, so
workers never wait on each other for long, and no multiprocess mode is needed. Several
instances of a service are several targets; Prometheus sums them.

No label ever carries something of a person or a case: no tracking code, case id, phone
number, address or token. Labels take their values from small fixed sets (route
templates, event types, channels, outcomes, office kinds, store and follower names).

Most figures are counted as things happen. Those that describe state (how far a relay
or projection is behind, open cases) are read when scraped, from the database, so that
they hold whichever instance did the work and whatever happened before a restart.

With OURVOICE_METRICS=off (`switch(False)`, as the service starts) every function below
that counts returns at once and `GET /metrics` answers 404; what is read when scraped
stays registered, since `/health/ready` reads the relays' lags through it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import wraps

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# -- HTTP -----------------------------------------------------------------------------
http_requests = Counter(
    "ourvoice_http_requests", "HTTP requests answered, by route template and status",
    ["endpoint", "method", "status"])
http_seconds = Histogram(
    "ourvoice_http_request_seconds", "Time from a request read whole to its answer",
    ["endpoint", "method"])

# -- events consumed from the service's queue -------------------------------------------
events_consumed = Counter(
    "ourvoice_events_consumed", "Public events taken from the service's queue, by type and "
    "what became of them (handled, requeued, dead-lettered)", ["event_type", "outcome"])
event_seconds = Histogram(
    "ourvoice_event_processing_seconds", "Time from a message's delivery to its settlement",
    ["event_type"])
unsettled = Gauge(
    "ourvoice_consumer_unsettled_messages", "Messages delivered to this process and not yet "
    "acknowledged, requeued or rejected", ["queue"])
batch_sizes = Histogram(
    "ourvoice_consumer_batch_messages", "Messages a batch consumer took in one batch (what "
    "the broker had delivered when the batch before it was done)", ["queue"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 400))
queue_ready = Gauge(
    "ourvoice_consumer_queue_ready_messages", "Messages ready in the service's queue, waiting "
    "for any instance (looked at every few seconds by the queue watch)", ["queue"])

# -- relays and projections -----------------------------------------------------------
events_published = Counter(
    "ourvoice_events_published", "Public events the relay published and the broker "
    "confirmed, by store and type", ["store", "event_type"])

# -- notifications ----------------------------------------------------------------------
deliveries = Counter(
    "ourvoice_deliveries", "Outcomes of deliveries recorded, by channel (sent, retrying "
    "after a failure, dead, skipped)", ["channel", "outcome"])
dead_letters = Counter(
    "ourvoice_dead_letters", "Deliveries given up after their last try, by channel", ["channel"])

# -- routing ----------------------------------------------------------------------------
deadlines = Counter(
    "ourvoice_deadlines", "Deadline warnings and breaches recorded, by deadline "
    "(acknowledge, resolve)", ["deadline", "outcome"])

DELIVERY_OUTCOMES = {"sent": "sent", "retrying": "failed", "dead": "dead", "skipped": "skipped"}

# -- counting, unless switched off ---------------------------------------------------------
recording = True


def switch(on: bool) -> None:
    """OURVOICE_METRICS, applied once as the process starts (shared/runner.py)."""
    global recording
    recording = on


def counted(count: Callable[..., None]) -> Callable[..., None]:
    """A function that records a figure: while metrics are off, a call costs one check.
    Every figure counted as things happen goes through one of these, so this is the one
    place the switch is looked at."""

    @wraps(count)
    def if_on(*args, **kwargs) -> None:
        if recording:
            count(*args, **kwargs)

    return if_on


@counted
def request_answered(endpoint: str, method: str, status: int, seconds: float) -> None:
    http_requests.labels(endpoint, method, str(status)).inc()
    http_seconds.labels(endpoint, method).observe(seconds)


@counted
def event_settled(event_type: str, outcome: str, seconds: float | None = None) -> None:
    events_consumed.labels(event_type, outcome).inc()
    if seconds is not None:
        event_seconds.labels(event_type).observe(seconds)


@counted
def unsettled_changed(queue: str, by: int) -> None:
    """Messages handed to (+1) or settled by (-1) this process's workers."""
    unsettled.labels(queue).inc(by)


@counted
def batch_taken(queue: str, size: int) -> None:
    batch_sizes.labels(queue).observe(size)


@counted
def waiting_in_queue(queue: str, messages: int) -> None:
    queue_ready.labels(queue).set(messages)


@counted
def published(store: str, event_types: Iterable[str]) -> None:
    for event_type in event_types:
        events_published.labels(store, event_type).inc()


@counted
def deliveries_recorded(outcomes: Iterable[tuple[str, str]]) -> None:
    """(channel, state) of deliveries whose new state was just recorded; states that are
    not an outcome (due, sending) are not counted."""
    for channel, state in outcomes:
        outcome = DELIVERY_OUTCOMES.get(state)
        if outcome is None:
            continue
        deliveries.labels(channel, outcome).inc()
        if outcome == "dead":
            dead_letters.labels(channel).inc()


@contextmanager
def deadlines_recorded(case) -> Iterator[None]:
    """Around the recording of a case after its deadlines were checked: the SlaWarning
    and SlaBreached events among its new ones are counted once the block has recorded
    them (not when another instance recorded the same first and this one failed)."""
    outcomes = [({"SlaWarning": "warned", "SlaBreached": "breached"}.get(type(e).__name__),
                 str(getattr(e, "deadline", ""))) for e in case.pending_events]
    yield
    deadlines_met(outcomes)


@counted
def deadlines_met(outcomes: list[tuple[str | None, str]]) -> None:
    for outcome, deadline in outcomes:
        if outcome is not None:
            deadlines.labels(deadline, outcome).inc()


# -- read when scraped ------------------------------------------------------------------
class ScrapedGauges(Collector):
    """Gauges whose values are read at scrape time by functions registered by the parts
    of the service (followers, read models): `read()` yields (labels, value). A reading
    that fails (the database is away) leaves its gauge out of that scrape, and counts."""

    def __init__(self):
        self.readers: dict[str, tuple[str, tuple[str, ...], dict[str, Callable]]] = {}

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.readers.setdefault(name, (documentation, labels, {}))

    def read(self, name: str, key: str, reader: Callable[[], Iterable[tuple[tuple, float]]]) -> None:
        self.readers[name][2][key] = reader

    def forget(self, name: str, key: str) -> None:
        self.readers[name][2].pop(key, None)

    def collect(self):
        for name, (documentation, labels, readers) in list(self.readers.items()):
            family = GaugeMetricFamily(name, documentation, labels=list(labels))
            for key, reader in list(readers.items()):
                try:
                    for values, value in reader():
                        family.add_metric([str(v) for v in values], value)
                except Exception as error:
                    scrape_failures.labels(name).inc()
                    log.debug("reading %s for %s failed: %s", name, key, error)
            yield family


scrape_failures = Counter(
    "ourvoice_scrape_failures", "Readings of a gauge at scrape time that failed (its "
    "database did not answer)", ["gauge"])
scraped = ScrapedGauges()
scraped.gauge("ourvoice_follower_position", "The last notification a follower of an event "
              "store's log has handled", ("follower",))
scraped.gauge("ourvoice_follower_lag_events", "Notifications stored beyond a follower's "
              "position", ("follower",))
scraped.gauge("ourvoice_relay_lag_events", "Events stored but not yet published by the "
              "store's relay", ("store",))
scraped.gauge("ourvoice_open_cases", "Cases in an office's queue, not resolved, by office "
              "kind and level (read by routing)", ("office_kind", "level"))
REGISTRY.register(scraped)


def follow(follower) -> None:
    """A follower now running in this process: its position and lag are read at scrape
    time (one indexed query each, on its own pool)."""

    def position():
        yield (follower.name,), follower.position()

    def lag():
        yield (follower.name,), follower.lag()

    scraped.read("ourvoice_follower_position", follower.name, position)
    scraped.read("ourvoice_follower_lag_events", follower.name, lag)
    if follower.name.startswith("relay:"):
        store = follower.name.removeprefix("relay:")
        scraped.read("ourvoice_relay_lag_events", follower.name,
                     lambda: [((store,), follower.lag())])


def unfollow(follower) -> None:
    for name in ("ourvoice_follower_position", "ourvoice_follower_lag_events",
                 "ourvoice_relay_lag_events"):
        scraped.forget(name, follower.name)


def relay_lags() -> dict[str, int]:
    """Each running relay's lag, by store, read now (for the readiness probe)."""
    readers = scraped.readers["ourvoice_relay_lag_events"][2]
    return {store: int(value) for reader in list(readers.values())
            for (store,), value in reader()}


def read_when_scraped(gauge: str, key: str,
                      reader: Callable[[], Iterable[tuple[tuple, float]]]) -> None:
    """A part of a service gives one of the gauges above its values when scraped:
    `reader()` yields (label values, value), read from the service's own tables (the
    kernel knows none of them). Registering again under the same key replaces it."""
    scraped.read(gauge, key, reader)


# -- exposition -------------------------------------------------------------------------
def exposition() -> tuple[bytes, str]:
    """The registry in Prometheus's text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
