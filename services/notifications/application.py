"""What notifications does, as methods of its event store: record the notices a public
event calls for, record each try of a delivery and what came of it, queue a dead letter
again, register and remove office systems' webhooks.

No channel, table or broker here: what a use case needs from outside (the webhooks
subscribed now, whether an office has an address on a channel, how a secret is sealed)
is handed in by its caller, and sending is the sender's."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Tracking

from services.notifications.domain import (
    CITIZEN_MESSAGES,
    NEVER_NOTIFIED,
    WEBHOOK,
    CaseAudience,
    Delivery,
    Notice,
    RetrySchedule,
    Subscription,
    Webhook,
    audience_id,
    notices_for,
)
from shared import clock
from shared.store import CaseStore

# How long the events of a case wait for its submission to be read.
WAIT_FOR_SUBMISSION = timedelta(minutes=10)


class SubmissionNotRead(Exception):
    """Events of a case can overtake its submission among competing workers: the event
    is to be tried again shortly rather than guessed about."""


class UnknownDelivery(LookupError):
    pass


class UnknownWebhook(LookupError):
    pass


@dataclass
class Try:
    """What the sender makes of a delivery it claimed: skipped (no address on its
    channel; nothing is tried), failed before a send could start (`error`: an address
    not found now, a template's mistake), or neither (sent next)."""

    delivery: Delivery
    skipped: str | None = None
    error: str | None = None


def jsonable(value):
    """A validated public event back in its JSON form, to be kept in a delivery and sent
    as it came (an office system's webhook gets exactly the public event)."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


class Notifications(CaseStore):
    name = "notifications"
    # Whether a case's citizen is anonymous never changes once noted: kept for the cases
    # seen last (some bytes each), so each later event of a case does not read it again.
    AUDIENCES_KEPT = 20_000

    @cached_property
    def audiences(self) -> OrderedDict[UUID, bool]:
        return OrderedDict()

    def _keep_audience(self, case_id: UUID, anonymous: bool) -> None:
        self.audiences[case_id] = anonymous
        self.audiences.move_to_end(case_id)
        while len(self.audiences) > self.AUDIENCES_KEPT:
            self.audiences.popitem(last=False)

    # -- what a public event calls for ---------------------------------------------------
    def record_notices(self, taken: Sequence[tuple[dict, Tracking]], *,
                       webhooks: Callable[[], Sequence[Subscription]],
                       reachable: Callable[[Notice], bool]) -> list[Delivery]:
        """Record, in one transaction with the trackings of the public events taken (a
        batch, in the order they came), one due delivery per recipient and channel each
        event calls for (nothing is sent here). `webhooks` gives the subscriptions now;
        `reachable` whether an office has an address on a notice's channel."""
        # Our own outcomes call for nothing and are not even tracked: a backlog sent
        # brings back one NotificationSent for each message, at no transaction.
        taken = [(event, tracking) for event, tracking in taken
                 if event["event_type"] not in NEVER_NOTIFIED]
        if not taken:
            return []
        subscribed = tuple(webhooks())
        noted: dict[UUID, bool] = {}  # submissions of this batch, not recorded yet
        audiences: list[CaseAudience] = []
        deliveries: list[Delivery] = []
        for event, _ in taken:
            kind = event["event_type"]
            case_id = UUID(str(event["case_id"]))
            anonymous = None
            if kind == "CaseSubmitted":
                audiences.append(CaseAudience.noted(case_id, event["data"]["anonymous"]))
                noted[case_id] = event["data"]["anonymous"]
            elif kind in CITIZEN_MESSAGES:
                anonymous = noted[case_id] if case_id in noted \
                    else self._anonymous(case_id, event["occurred_at"])
            notices = [notice for notice in notices_for(event, anonymous=anonymous,
                                                         webhooks=subscribed)
                       if reachable(notice)]
            envelope = jsonable(event)
            deliveries += [
                Delivery.due(envelope, notice,
                             details=envelope if notice.channel == WEBHOOK else envelope["data"])
                for notice in notices
            ]
        self.record(*audiences, *deliveries, trackings=[tracking for _, tracking in taken])
        for audience in audiences:  # once recorded
            self._keep_audience(audience.case_id, audience.anonymous)
        return deliveries

    def _anonymous(self, case_id: UUID, occurred_at: datetime) -> bool | None:
        if case_id in self.audiences:
            return self.audiences[case_id]
        try:
            anonymous = self.repository.get(audience_id(case_id)).anonymous
        except AggregateNotFoundError:
            # A submission never seen (history from before this service) is left to
            # intake, whose contact lookup refuses an anonymous case anyway.
            if clock.now() - occurred_at < WAIT_FOR_SUBMISSION:
                raise SubmissionNotRead("the case's submission has not been read yet") from None
            return None
        self._keep_audience(case_id, anonymous)
        return anonymous

    # -- the sender's tries ----------------------------------------------------------------
    def start_tries(self, tries: Sequence[Try], now: datetime, lease: timedelta,
                    retry: RetrySchedule) -> set:
        """Record what a pass of the sender makes of the deliveries it claimed: a skip, or
        an attempt (with a lease) and at once its failure when it could not start.
        Returns the ids of the deliveries recorded (see `save_deliveries`)."""
        for one in tries:
            if one.skipped is not None:
                one.delivery.skip(one.skipped)
                continue
            one.delivery.attempt(now, lease)
            if one.error is not None:
                one.delivery.failed(one.error, now, retry)
        return self.save_deliveries([one.delivery for one in tries])

    def record_outcomes(self, outcomes: Sequence[tuple[Delivery, str | None]], now: datetime,
                        retry: RetrySchedule) -> set:
        """What came of sends: sent (no error), or failed, to be tried again later or
        dead-lettered after the last try."""
        for delivery, error in outcomes:
            if error is None:
                delivery.sent()
            else:
                delivery.failed(error, now, retry)
        return self.save_deliveries([delivery for delivery, _ in outcomes])

    def save_deliveries(self, deliveries: Sequence[Delivery]) -> set:
        """Record the deliveries' new events, all in one transaction when possible. If
        another instance got to one of them first, each is recorded on its own and those
        that lost the race are left to the other instance. Returns the ids recorded."""
        pending = {d.id: d.collect_events() for d in deliveries}
        pending = {key: events for key, events in pending.items() if events}
        if not pending:
            return set()
        try:
            self.events.put([e for events in pending.values() for e in events])
            return set(pending)
        except IntegrityError:
            pass
        saved = set()
        for key, events in pending.items():
            try:
                self.events.put(events)
                saved.add(key)
            except IntegrityError:
                continue  # another instance recorded this delivery's next step first
        return saved

    # -- operators -----------------------------------------------------------------------
    def requeue(self, delivery_id: str, by: str) -> Delivery:
        """Queue a dead letter again, with a fresh round of tries. Raises UnknownDelivery,
        NotDue (not a dead letter) or IntegrityError (changed at the same moment)."""
        try:
            delivery = self.repository.get(UUID(delivery_id))
        except (ValueError, AggregateNotFoundError):
            raise UnknownDelivery(delivery_id) from None
        if not isinstance(delivery, Delivery):
            raise UnknownDelivery(delivery_id)
        delivery.requeue(by=by)
        self.record(delivery)
        return delivery

    def register_webhook(self, url: str, secret: str, area: str | None, office_id: str | None,
                         by: str, seal: Callable[[UUID, str], str]) -> Webhook:
        """An office system's webhook; raises ValueError for what the domain refuses."""
        hook = Webhook.register(webhook_id=uuid.uuid4(), url=url, secret=secret, area=area,
                                office_id=office_id, by=by, seal=seal)
        self.record(hook)
        return hook

    def remove_webhook(self, webhook_id: str, by: str) -> Webhook:
        try:
            hook: Any = self.repository.get(UUID(webhook_id))
        except (ValueError, AggregateNotFoundError):
            hook = None
        if not isinstance(hook, Webhook) or hook.removed:
            raise UnknownWebhook(webhook_id)
        hook.remove(by=by)
        self.record(hook)
        return hook
