"""Notifications: tells citizens, offices and ombudsmen what concerns them, once."""

from __future__ import annotations

import logging
from uuid import UUID

from services.notifications.domain import Notification, notices_for, notification_id
from shared.consumer import on_events
from shared.db import DatabaseProvider, tracking_ddl
from shared.store import CaseStore, EventStore
from shared.web import HealthAndSpec

log = logging.getLogger(__name__)

# Channels (SMS, email, webhooks) come later; until then a notice is recorded and logged.
CHANNEL = "log"


class Notifications(CaseStore):
    name = "notifications"


class Service(HealthAndSpec):
    name = "notifications"
    title = "Our Voice notifications"

    store = EventStore(Notifications)
    db = DatabaseProvider(tracking_ddl("notifications"))

    @on_events("notifications")
    def notify(self, event, tracking):
        notices = [
            Notification(
                notification_id=notification_id(UUID(str(event["event_id"])), role, CHANNEL),
                context={"tracking_code": event["tracking_code"],
                         "commune": event["location"]["commune"],
                         "office_id": event["office_id"]},
                channel=CHANNEL,
                message=message,
                recipient_role=role,
                about_event=str(event["event_id"]),
            )
            for role, message in notices_for(event)
        ]
        self.store.record(*notices, tracking=tracking)
        for notice in notices:
            log.info("notice %s to %s about case %s", notice.message, notice.recipient_role,
                     event["tracking_code"])
