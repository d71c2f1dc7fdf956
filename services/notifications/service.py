"""Notifications: tells citizens, offices, ombudsmen and office systems what concerns
them, once.

Two halves that never wait for each other:
- the consumer reads every public event and records, with the event's tracking, one
  `NotificationDue` per (event, recipient, channel): nothing is sent there, so a slow
  SMTP server or a dead webhook never holds up the queue;
- the sender (see sender.py) takes due deliveries from the outbox read model, sends
  them and records `NotificationSent` or `NotificationFailed` for each try.

What each does is in application.py; this is the nameko adapter around it."""

from __future__ import annotations

from eventsourcing.persistence import IntegrityError
from nameko.timer import timer

from services.notifications import history, readmodels
from services.notifications.application import (
    Notifications,
    SubmissionNotRead,
    UnknownDelivery,
)
from services.notifications.commands import COMMANDS
from services.notifications.domain import NotDue
from services.notifications.history import HISTORY
from services.notifications.migrations import MIGRATIONS
from services.notifications.schemas import DeadLetter, Requeued
from services.notifications.sender import Sender
from shared.consumer import NotYet, on_recorded_batches
from shared.db import DatabaseProvider, tracking_ddl
from shared.rpc import RpcProxy, rpc
from shared.settings import settings
from shared.store import EventStore
from shared.web import HealthAndSpec, HttpError, endpoint, not_found


class Service(HealthAndSpec):
    name = "notifications"
    title = "Our Voice notifications"
    commands = COMMANDS
    migrations = MIGRATIONS

    store = EventStore(Notifications, projections=(*readmodels.PROJECTIONS, history.CASE_STREAMS))
    # Its part of a case's history, read from that store (see shared/history.py).
    history = HISTORY
    db = DatabaseProvider(tracking_ddl("notifications"))
    sender = Sender()
    intake = RpcProxy("intake")
    routing = RpcProxy("routing")

    @on_recorded_batches("notifications")
    def record_notices(self, taken):
        """Who is told what about these events: one due delivery per recipient and
        channel. A backlog is taken a batch per transaction: our own NotificationSent
        come back here too, one for each message sent."""
        try:
            self.store.record_notices(taken, webhooks=self._subscriptions,
                                      reachable=self._reachable)
        except SubmissionNotRead as waiting:
            raise NotYet(str(waiting)) from None

    @rpc(callers=("reporting",))
    def case_history(self, case_id: str) -> list[dict]:
        """Notifications' part of the case's history, for an audit (see
        shared/history.py)."""
        with self.db.transaction() as cursor:
            return history.case_history(cursor, case_id)

    def _subscriptions(self):
        """Kept in memory (see shared/remembered.py): every event needs them."""
        return readmodels.SUBSCRIBED.get(self._read_subscriptions)

    def _read_subscriptions(self):
        with self.db.transaction() as cursor:
            return readmodels.subscriptions(cursor)

    def _reachable(self, notice) -> bool:
        """Whether an office has an address on the notice's channel. When routing cannot
        say now, the delivery is recorded and the sender decides at send time."""
        if notice.recipient_role not in ("office", "ombudsman"):
            return True
        channels = self.sender.office_channels(self.routing, notice.recipient)
        return channels is None or notice.channel in channels

    # The runner checked the settings before this module was imported.
    @timer(interval=settings().notifications_send_interval)
    def send_due(self):
        """Send what is due; see sender.py."""
        self.sender.deliver(self.store, self.db, self.intake, self.routing)

    # -- operators -------------------------------------------------------------------
    @endpoint("GET", "/v1/notifications/dead-letters", allow=("admin",),
              response=DeadLetter(many=True))
    def list_dead_letters(self, request):
        """Deliveries given up after their last try, oldest first."""
        with self.db.transaction() as cursor:
            return DeadLetter(many=True).dump(readmodels.dead_letters(cursor))

    @endpoint("POST", "/v1/notifications/dead-letters/{delivery_id}/retry", allow=("admin",),
              response=Requeued, errors={409: "the delivery is not a dead letter"})
    def retry_dead_letter(self, request, delivery_id, principal):
        """Queue a dead letter again, with a fresh round of tries."""
        return requeue(self.store, delivery_id, by=principal.id)


def requeue(store: Notifications, delivery_id: str, by: str) -> dict:
    """A dead letter queued again, answered as the HTTP endpoint does (and refused with
    its errors)."""
    try:
        delivery = store.requeue(delivery_id, by=by)
    except UnknownDelivery:
        raise not_found("delivery") from None
    except NotDue as refusal:
        raise HttpError(409, {"delivery_id": [str(refusal)]}) from None
    except IntegrityError:
        raise HttpError(409, {"delivery_id": ["changed at the same moment; try again"]}) from None
    return Requeued().dump({"delivery_id": delivery.id, "state": delivery.state})
