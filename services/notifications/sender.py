"""The sender: takes due deliveries from the outbox, sends them and records what came of
each, without ever holding up the consumer that records them.

Each pass (a nameko timer, so it has RPC proxies to intake and routing):
1. claims due deliveries of each channel, as many as the channel has free senders;
2. looks up the addresses (the citizen's contact from intake, the office's from the
   routing directory, the webhook from the registry) and renders the message;
3. records, in one transaction, a `DeliveryAttempted` for each delivery it will send
   (with a lease) and what it already knows (skipped: no address; failed: lookup);
4. hands each send to the channel's pool of green threads and returns; a thread of its
   own records the outcomes (`NotificationSent`, `NotificationFailed`) of the sends
   finished meanwhile, together, a few times a second.

A send in progress belongs to one attempt: two instances that claim the same delivery
both try to record the attempt on the same version of the aggregate, and only one
succeeds. A channel that is slow or failing fills only its own pool; failures are retried
with exponential backoff, and after the last try the delivery is dead-lettered.

If the process dies between a receiver accepting a message and the outcome being
recorded (or the outcome cannot be written before the lease runs out: the database is
unreachable for longer than that), the attempt's lease expires and the delivery is sent
again with the same delivery id (email Message-ID, webhook and SMS gateway reference),
which receivers use to drop the copy. Nothing else is ever sent twice."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import eventlet
import requests
from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider

from services.notifications import channels, readmodels
from services.notifications.addresses import Addresses, LookupFailed
from services.notifications.application import Try
from services.notifications.domain import CHANNELS, CITIZEN, Delivery, RetrySchedule
from services.notifications.messages import Templates
from shared import clock, metrics
from shared.phones import NotAPhoneNumber, e164
from shared.settings import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SenderSettings:
    concurrency: int = 32  # sends in flight per channel
    lease_seconds: float = 60.0  # longer than any send may take (see send timeout)
    lookup_timeout: float = 5.0  # RPC to intake or routing for an address
    office_language: str = "km"
    retry: RetrySchedule = RetrySchedule()

    @classmethod
    def from_env(cls) -> SenderSettings:
        current = settings()
        return cls(
            concurrency=current.notifications_concurrency,
            lease_seconds=current.notifications_lease_seconds,
            lookup_timeout=current.notifications_lookup_timeout,
            office_language=current.notifications_office_language,
            retry=RetrySchedule(base_seconds=current.notifications_retry_base_seconds,
                                attempts=current.notifications_max_attempts),
        )


@dataclass
class Outgoing(Try):
    """A try and, when there is something to send, what to send where."""

    send: Any = None  # a callable that raises channels.SendFailed


class Sender(DependencyProvider):
    DONE_SECONDS = 3.0  # far longer than the outbox projection takes to catch up
    # Outcomes of sends that finish meanwhile are recorded together, at most this long
    # after: each recording is an append, which every follower of the store then reads.
    OUTCOMES_SECONDS = 0.25

    def setup(self) -> None:
        self.settings = SenderSettings.from_env()
        self.templates = Templates()
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.settings.concurrency)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        timeout = settings().notifications_send_timeout
        self.email = channels.Email(channels.SmtpSettings.from_env())
        self.sms = channels.Sms(channels.SmsSettings.from_env(), session)
        self.webhooks = channels.Webhooks(session, timeout)
        self.pools = {channel: GreenPool(self.settings.concurrency) for channel in CHANNELS}
        self.in_flight: dict[Any, Delivery] = {}
        # Deliveries this process just finished: the outbox shows them open until its
        # projection catches up, and claiming them again would only be wasted reads.
        self.done: dict[Any, float] = {}
        self.finished: deque[Outgoing] = deque()
        self.offices: dict = {}
        self.store = None
        self.running = False
        self.secrets_sealed = False
        # After a pass that found nothing due: until when nothing can be (the soonest
        # next try, at most a poll interval ahead), unless the outbox changes before.
        self.quiet_until: tuple[datetime, float] | None = None
        self.poll_seconds = settings().poll_seconds

    def get_dependency(self, worker_ctx) -> Sender:
        return self

    def office_channels(self, routing, office_id: str) -> set[str] | None:
        """The channels an office can be reached on (from the directory, cached a few
        seconds), or None when routing does not answer now. Offices without an address
        get no delivery at all, rather than one recorded as skipped for each notice."""
        cached = self.offices.get(office_id)
        if cached is None or cached[0] < time.monotonic() or isinstance(cached[1], Exception):
            try:
                with eventlet.Timeout(self.settings.lookup_timeout):
                    contact = routing.office_contact(office_id)
            except (Exception, eventlet.Timeout):
                return None
            self.offices[office_id] = (time.monotonic() + Addresses.OFFICE_SECONDS, contact)
            cached = self.offices[office_id]
        contact = cached[1] or {}
        return {channel for channel, field in (("email", "email"), ("sms", "phone"))
                if contact.get(field)}

    def start(self) -> None:
        self.running = True
        self.container.spawn_managed_thread(self._record_continually,
                                            identifier="notifications.outcomes")

    def _record_continually(self) -> None:
        """Outcomes are recorded as soon as sends finish, whatever a pass is doing: a
        try's lease must not run out while its outcome waits to be written."""
        while self.running:
            try:
                if self.store is not None:
                    self.record_outcomes(self.store)
            except Exception:
                log.exception("recording outcomes failed; trying again")
                eventlet.sleep(0.5)
            eventlet.sleep(self.OUTCOMES_SECONDS)

    def stop(self) -> None:
        """Let sends under way finish and record them, so a clean stop leaves nothing in
        doubt."""
        self.running = False
        for pool in self.pools.values():
            with eventlet.Timeout(self.settings.lease_seconds, exception=False):
                pool.waitall()
        if self.store is not None:
            self.record_outcomes(self.store)
        self.email.close()

    # -- one pass ----------------------------------------------------------------------
    def deliver(self, store, db, intake, routing) -> int:
        """One pass of the sender; returns how many sends it started."""
        self.store = store
        if not self.secrets_sealed:
            # Registrations from before secrets were sealed: sealed once, at start.
            with db.transaction() as cursor:
                sealed = readmodels.seal_plaintext_secrets(cursor)
            if sealed:
                log.info("sealed %d webhook secret(s) kept in plain text", sealed)
            self.secrets_sealed = True
        now = clock.now()
        if self.quiet(now):
            return 0  # no transaction at all: nothing can be due yet
        # Cleared before looking: a change of the outbox during this pass sets it again.
        readmodels.OUTBOX_CHANGED.clear()
        with db.transaction() as cursor:
            claimed = []
            busy = readmodels.excluded([*self.in_flight, *self.recently_done()])
            for channel in CHANNELS:
                free = self.pools[channel].free()
                if free:
                    claimed += readmodels.claim(cursor, channel, now, free, busy)
            if not claimed:
                self.keep_quiet(now, readmodels.next_due(cursor, busy))
                return 0
            self.quiet_until = None
            deliveries = [delivery for delivery in store.aggregates(cursor, claimed)
                          if delivery.attemptable(now)]
            addresses = Addresses(intake, routing, self.settings.lookup_timeout, self.offices)
            addresses.prefetch(deliveries)
            outgoing = [self.prepare(delivery, addresses, cursor) for delivery in deliveries]
            # Recorded here: skipped, attempted, and failed at once where a try could not
            # start; the claim's row locks are held until then.
            saved = store.start_tries(outgoing, now, timedelta(seconds=self.settings.lease_seconds),
                                      self.settings.retry)
            metrics.deliveries_recorded((one.delivery.channel, one.delivery.state)
                                        for one in outgoing if one.delivery.id in saved)
            self._remember_done(d.id for d in deliveries if d.finished)
        started = 0
        for item in outgoing:
            if item.send is not None and item.delivery.id in saved:
                self.in_flight[item.delivery.id] = item.delivery
                self.pools[item.delivery.channel].spawn_n(self._send, item)
                started += 1
        return started

    def quiet(self, now: datetime) -> bool:
        """Whether the last look found nothing due before now and the outbox has not
        changed since; without this the timer's every tick (20 a second) would be a
        transaction even when nothing happens. Another instance's changes, which this
        process's projection may not write, are seen within a poll interval."""
        if self.quiet_until is None or readmodels.OUTBOX_CHANGED.is_set():
            return False
        due, until = self.quiet_until
        return now < due and time.monotonic() < until

    def keep_quiet(self, now: datetime, next_due: datetime | None) -> None:
        ahead = now + timedelta(seconds=self.poll_seconds)
        self.quiet_until = (min(next_due, ahead) if next_due else ahead,
                            time.monotonic() + self.poll_seconds)

    def prepare(self, delivery: Delivery, addresses: Addresses, cursor) -> Outgoing:
        """What to send and where; a delivery with no address on its channel is skipped
        without an attempt: nothing was tried."""
        if delivery.channel == "webhook":
            hook = readmodels.webhook(cursor, delivery.recipient)
            if hook is None or hook["removed_at"] is not None:
                return Outgoing(delivery, skipped="webhook removed")
            return Outgoing(delivery, send=lambda: self.webhooks.send(
                hook["url"], hook["secret"], delivery.details, str(delivery.id)))
        try:
            contact = addresses.of(delivery)
        except LookupFailed as failure:
            return Outgoing(delivery, error=str(failure))
        if contact is None:
            return Outgoing(delivery,
                            skipped="no contact: anonymous, no consent, erased or unknown")
        address = contact.get("email" if delivery.channel == "email" else "phone")
        if not address:
            missing = "email address" if delivery.channel == "email" else "phone number"
            return Outgoing(delivery, skipped=f"no {missing}")
        language = contact.get("language") if delivery.recipient == CITIZEN \
            else self.settings.office_language
        try:
            text = self.templates.render(delivery.message, language or "km", delivery.details,
                                         delivery.case["tracking_code"],
                                         delivery.case.get("office_id"),
                                         delivery.case.get("case_id"), names=addresses.names)
        except Exception as error:  # a template's mistake fails this delivery, not the pass
            return Outgoing(delivery, error=f"template {delivery.message}: "
                                            f"{type(error).__name__}")
        identity = str(delivery.id)
        if delivery.channel == "email":
            return Outgoing(delivery, send=lambda: self.email.send(address, text.subject,
                                                                   text.email, identity))
        try:
            number = e164(address)
        except NotAPhoneNumber as refusal:
            # Trying again would not make it a number: said once, for operators to fix.
            return Outgoing(delivery, skipped=f"phone number not usable: {refusal}")
        return Outgoing(delivery, send=lambda: self.sms.send(number, text.sms, identity))

    def _send(self, item: Outgoing) -> None:
        try:
            item.send()
            item.error = None
        except channels.SendFailed as failure:
            item.error = str(failure)
        except Exception as error:  # a bug in a channel must not lose the outcome
            log.exception("sending delivery %s failed", item.delivery.id)
            item.error = f"{type(error).__name__}"
        self.finished.append(item)

    def _remember_done(self, delivery_ids) -> None:
        until = time.monotonic() + self.DONE_SECONDS
        for delivery_id in delivery_ids:
            self.done[delivery_id] = until

    def recently_done(self) -> list:
        now = time.monotonic()
        self.done = {d: until for d, until in self.done.items() if until > now}
        return list(self.done)

    # -- recording -----------------------------------------------------------------------
    def record_outcomes(self, store) -> None:
        done = []
        while self.finished:
            done.append(self.finished.popleft())
        if not done:
            return
        for item in done:
            if item.error is None:
                log.info("sent delivery %s (%s) to %s by %s", item.delivery.id,
                         item.delivery.message, item.delivery.recipient_role, item.delivery.channel)
            else:
                log.warning("delivery %s by %s failed (try %d): %s", item.delivery.id,
                            item.delivery.channel, item.delivery.attempts, item.error)
        try:
            # Sent, or failed: tried again later or, after the last try, dead-lettered.
            store.record_outcomes([(item.delivery, item.error) for item in done], clock.now(),
                                  self.settings.retry)
            metrics.deliveries_recorded((item.delivery.channel, item.delivery.state)
                                        for item in done)
        finally:
            self._remember_done(item.delivery.id for item in done if item.delivery.finished)
            for item in done:
                self.in_flight.pop(item.delivery.id, None)
