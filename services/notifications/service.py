"""Notifications: tells citizens, offices, ombudsmen and office systems what concerns
them, once.

Two halves that never wait for each other:
- the consumer reads every public event and records, with the event's tracking, one
  `NotificationDue` per (event, recipient, channel): nothing is sent there, so a slow
  SMTP server or a dead webhook never holds up the queue;
- the sender (see sender.py) takes due deliveries from the outbox read model, sends
  them and records `NotificationSent` or `NotificationFailed` for each try."""

from __future__ import annotations

import logging
import os
from datetime import date, datetime, timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from marshmallow import Schema, fields
from nameko.timer import timer

from services.notifications import views
from services.notifications.commands import COMMANDS
from services.notifications.domain import (
    CITIZEN_MESSAGES,
    NEVER_NOTIFIED,
    WEBHOOK,
    CaseAudience,
    Delivery,
    NotDue,
    audience_id,
    notices_for,
)
from services.notifications.sender import Sender
from shared import clock
from shared.consumer import NotYet, on_events
from shared.db import DatabaseProvider, tracking_ddl
from shared.rpc import RpcProxy
from shared.store import CaseStore, EventStore
from shared.web import HealthAndSpec, HttpError, endpoint, not_found

log = logging.getLogger(__name__)

SEND_INTERVAL = float(os.environ.get("NOTIFICATIONS_SEND_INTERVAL", "0.05"))
WAIT_FOR_SUBMISSION = timedelta(minutes=10)


class Notifications(CaseStore):
    name = "notifications"


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


class DeadLetter(Schema):
    delivery_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    about_type = fields.String(required=True)
    channel = fields.String(required=True)
    recipient_role = fields.String(required=True)
    recipient = fields.String(required=True, metadata={
        "description": "citizen, an office id or a webhook id; never an address"})
    message = fields.String(required=True)
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    due_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True)


class Requeued(Schema):
    delivery_id = fields.UUID(required=True)
    state = fields.String(required=True)


class Service(HealthAndSpec):
    name = "notifications"
    title = "Our Voice notifications"
    commands = COMMANDS

    store = EventStore(Notifications, projections=views.PROJECTIONS)
    db = DatabaseProvider(tracking_ddl("notifications"))
    sender = Sender()
    intake = RpcProxy("intake")
    routing = RpcProxy("routing")

    @on_events("notifications")
    def record_notices(self, event, tracking):
        """Who is told what about this event: one due delivery per recipient and channel."""
        if event["event_type"] in NEVER_NOTIFIED:
            return
        case_id = UUID(str(event["case_id"]))
        remembered = []
        anonymous = None
        if event["event_type"] == "CaseSubmitted":
            remembered.append(CaseAudience(case_id=case_id,
                                           anonymous=event["data"]["anonymous"]))
        elif event["event_type"] in CITIZEN_MESSAGES:
            try:
                anonymous = self.store.repository.get(audience_id(case_id)).anonymous
            except AggregateNotFoundError:
                # Events of a case can overtake its submission among competing workers:
                # wait for it rather than guess. A submission never seen (history from
                # before this service) is left to intake, whose contact lookup refuses
                # an anonymous case anyway.
                if clock.now() - event["occurred_at"] < WAIT_FOR_SUBMISSION:
                    raise NotYet("the case's submission has not been read yet") from None
        with self.db.transaction() as cursor:
            webhooks = views.subscriptions(cursor)
        notices = [notice for notice in notices_for(event, anonymous=anonymous, webhooks=webhooks)
                   if self._reachable(notice)]
        envelope = jsonable(event)
        deliveries = [
            Delivery.due(envelope, notice,
                         details=envelope if notice.channel == WEBHOOK else envelope["data"])
            for notice in notices
        ]
        if remembered or deliveries:
            self.store.record(*remembered, *deliveries, tracking=tracking)
        else:
            with self.db.tracked("notifications", tracking):
                pass

    def _reachable(self, notice) -> bool:
        """Whether an office has an address on the notice's channel. When routing cannot
        say now, the delivery is recorded and the sender decides at send time."""
        if notice.recipient_role not in ("office", "ombudsman"):
            return True
        channels = self.sender.office_channels(self.routing, notice.recipient)
        return channels is None or notice.channel in channels

    @timer(interval=SEND_INTERVAL)
    def send_due(self):
        """Send what is due; see sender.py."""
        self.sender.deliver(self.store, self.db, self.intake, self.routing)

    # -- operators -------------------------------------------------------------------
    @endpoint("GET", "/v1/notifications/dead-letters", allow=("admin",),
              response=DeadLetter(many=True))
    def list_dead_letters(self, request):
        """Deliveries given up after their last try, oldest first."""
        with self.db.transaction() as cursor:
            return DeadLetter(many=True).dump(views.dead_letters(cursor))

    @endpoint("POST", "/v1/notifications/dead-letters/{delivery_id}/retry", allow=("admin",),
              response=Requeued, errors={409: "the delivery is not a dead letter"})
    def retry_dead_letter(self, request, delivery_id, principal):
        """Queue a dead letter again, with a fresh round of tries."""
        return requeue(self.store, delivery_id, by=principal.id)


def requeue(store: CaseStore, delivery_id: str, by: str) -> dict:
    try:
        delivery = store.repository.get(UUID(delivery_id))
    except (ValueError, AggregateNotFoundError):
        raise not_found("delivery") from None
    if not isinstance(delivery, Delivery):
        raise not_found("delivery")
    try:
        delivery.requeue(by=by)
        store.record(delivery)
    except NotDue as refusal:
        raise HttpError(409, {"delivery_id": [str(refusal)]}) from None
    except IntegrityError:
        raise HttpError(409, {"delivery_id": ["changed at the same moment; try again"]}) from None
    return Requeued().dump({"delivery_id": delivery.id, "state": delivery.state})
