"""Who is told what about a case. Pure domain: no I/O."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

NOTIFICATION_NAMESPACE = UUID("0b7f6a8e-2d5c-4e8f-9a61-6f7572566f69")

# event type -> (recipient role, message)
MESSAGES = {
    "CaseSubmitted": ("citizen", "case-received"),
    "CaseRouted": ("office", "new-case-in-queue"),
}


def notification_id(event_id: UUID, recipient_role: str, channel: str) -> UUID:
    """One id per (event, recipient, channel): the same notice can be recorded once only."""
    return uuid5(NOTIFICATION_NAMESPACE, f"{event_id}:{recipient_role}:{channel}")


def notices_for(event: dict) -> list[tuple[str, str]]:
    """(recipient role, message) pairs an event calls for."""
    found = MESSAGES.get(event["event_type"])
    if found is None:
        return []
    role, message = found
    if role == "citizen" and event["data"].get("anonymous"):
        return []  # anonymous citizens are never contacted
    return [found]


class Notification(Aggregate):
    @staticmethod
    def create_id(notification_id: UUID, **_: Any) -> UUID:
        return notification_id

    @event("NotificationSent")
    def __init__(self, notification_id: UUID, context: dict, channel: str, message: str,
                 recipient_role: str, about_event: str) -> None:
        self.channel = channel
        self.message = message
        self.recipient_role = recipient_role
