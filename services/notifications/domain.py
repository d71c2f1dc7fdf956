"""Who is told what about a case, on which channel, and what becomes of each message.
Pure domain: no I/O.

A public event calls for notices: (recipient, message, channel). Each notice becomes a
`Delivery` with an id derived from (event, recipient, channel), so the same notice can
be recorded once only, however often the event is delivered. A delivery is attempted,
then sent, failed (tried again later, or dead-lettered after the last try) or skipped
(the recipient has no address on that channel)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid5

from shared.aggregate import Aggregate, event, id_from

NOTIFICATION_NAMESPACE = UUID("0b7f6a8e-2d5c-4e8f-9a61-6f7572566f69")

CITIZEN = "citizen"
PEOPLE_CHANNELS = ("sms", "email")
WEBHOOK = "webhook"
CHANNELS = (*PEOPLE_CHANNELS, WEBHOOK)

# What the citizen hears, in the language of their case.
CITIZEN_MESSAGES = {
    "CaseSubmitted": "case-received",
    "CaseRouted": "case-routed",
    "CaseTransferred": "case-routed",
    "InformationRequested": "information-requested",
    "CaseResolved": "case-resolved",
    "CaseEscalated": "case-escalated",
    "CaseClosed": "case-closed",
}

# What the office the case is at hears (an ombudsman's office is told the same way).
OFFICE_MESSAGES = {
    "CaseRouted": "new-case",
    "CaseTransferred": "new-case",
    "CaseEscalated": "escalation",
    "SlaWarning": "deadline-warning",
    "SlaBreached": "deadline-breached",
    "InformationProvided": "information-provided",
}

# Our own outcomes are public events too: telling anyone about them would only start a
# loop of notices about notices. A reading of the case file is shown in the citizen's
# timeline; a message for every reading would only be noise.
NEVER_NOTIFIED = ("NotificationSent", "NotificationFailed", "CaseFileOpened")


class NotDue(Exception):
    """The delivery is finished, or another attempt is under way."""


@dataclass(frozen=True)
class Notice:
    recipient_role: str  # citizen, office, ombudsman, office-system
    recipient: str  # "citizen", an office id, or a webhook id
    message: str  # a template name; for office systems the event type
    channel: str


@dataclass(frozen=True)
class Subscription:
    """An office system's webhook: the events of an area (a province, district or
    commune code) or of one office."""

    id: UUID
    area: str | None = None
    office_id: str | None = None

    def matches(self, event: dict) -> bool:
        if event.get("sensitive"):
            # A sensitive case is the ombudsman's alone: only the webhook of the ombudsman's
            # office that holds it, never an area's or a former office's.
            return bool(self.office_id) and self.office_id == event.get("office_id") \
                and role_of(self.office_id) == "ombudsman"
        if self.office_id:
            data = event.get("data") or {}
            return self.office_id in (event.get("office_id"), data.get("from_office_id"))
        return bool(self.area) and event["location"]["commune"].startswith(self.area)


def role_of(office_id: str) -> str:
    return "ombudsman" if "ombudsman" in office_id else "office"


def delivery_id(event_id: UUID | str, recipient: str, channel: str) -> UUID:
    """One id per (event, recipient, channel): the same notice can be recorded once only,
    and receivers can drop a copy by it."""
    return uuid5(NOTIFICATION_NAMESPACE, f"{event_id}:{recipient}:{channel}")


def notices_for(event: dict, *, anonymous: bool | None,
                webhooks: tuple[Subscription, ...] = ()) -> list[Notice]:
    """The notices an event calls for. `anonymous` is what the case's submission said
    (None when it has not been seen): an anonymous citizen is never contacted. Of a
    sensitive case only its ombudsman's office hears (and the citizen), and the public
    event it comes from carries no words to repeat."""
    kind = event["event_type"]
    if kind in NEVER_NOTIFIED:
        return []
    data = event.get("data") or {}
    if kind == "CaseSubmitted":
        anonymous = data.get("anonymous", anonymous)
    notices: list[Notice] = []
    message = CITIZEN_MESSAGES.get(kind)
    if message and not anonymous:
        notices += [Notice(CITIZEN, CITIZEN, message, channel) for channel in PEOPLE_CHANNELS]
    message = OFFICE_MESSAGES.get(kind)
    office = event.get("office_id")
    answers = kind != "InformationProvided" or data.get("answers_request")
    confidential = event.get("sensitive") and office and role_of(office) != "ombudsman"
    if message and office and answers and not confidential:
        notices += [Notice(role_of(office), office, message, channel)
                    for channel in PEOPLE_CHANNELS]
    notices += [Notice("office-system", str(hook.id), kind, WEBHOOK)
                for hook in webhooks if hook.matches(event)]
    return notices


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff: the n-th failed try waits base * 2**(n-1) seconds; after
    `attempts` tries the delivery is dead-lettered."""

    base_seconds: float = 5.0
    attempts: int = 8

    def retry_at(self, failed_try: int, now: datetime) -> datetime | None:
        if failed_try >= self.attempts:
            return None
        return now + timedelta(seconds=self.base_seconds * 2 ** (failed_try - 1))


class Delivery(Aggregate):
    """One message to one recipient on one channel, about one public event."""

    create_id = id_from("delivery_id")

    def event_context(self) -> dict:
        # Every event names the case, for the public envelope of NotificationSent/Failed.
        return self.case

    @classmethod
    def due(cls, event: dict, notice: Notice, details: dict) -> Delivery:
        """`details` are what the message says: the public event's data, or for an
        office system the whole public event."""
        return cls(
            delivery_id=delivery_id(event["event_id"], notice.recipient, notice.channel),
            context={"case_id": str(event["case_id"]), "tracking_code": event["tracking_code"],
                     "commune": event["location"]["commune"], "office_id": event["office_id"],
                     # Its NotificationSent/Failed then travel as the case's other events.
                     **({"sensitive": True} if event.get("sensitive") else {})},
            channel=notice.channel, recipient_role=notice.recipient_role,
            recipient=notice.recipient, message=notice.message,
            about_event=str(event["event_id"]), about_type=event["event_type"], details=details,
        )

    @event("NotificationDue")
    def __init__(self, delivery_id: UUID, context: dict, channel: str, recipient_role: str,
                 recipient: str, message: str, about_event: str, about_type: str,
                 details: dict) -> None:
        self.case = context
        self.channel = channel
        self.recipient_role = recipient_role
        self.recipient = recipient
        self.message = message
        self.about_event = about_event
        self.about_type = about_type
        self.details = details
        self.state = "due"
        self.attempts = 0  # every try ever made
        self.tries = 0  # tries since it was last queued (an operator may queue it again)
        self.lease_until: datetime | None = None
        self.retry_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("sent", "skipped", "dead")

    def attemptable(self, now: datetime) -> bool:
        """Whether a try may start now. A try whose sender died holds its lease until it
        expires; then the delivery is tried again (with the same id, for receivers to drop
        a copy)."""
        if self.finished:
            return False
        if self.state == "sending" and self.lease_until and now < self.lease_until:
            return False
        return not (self.state == "retrying" and self.retry_at and now < self.retry_at)

    def attempt(self, now: datetime, lease: timedelta) -> None:
        if not self.attemptable(now):
            raise NotDue(f"delivery is {self.state}; no try may start now")
        self._attempted(attempt=self.attempts + 1, lease_until=now + lease)

    @event("DeliveryAttempted")
    def _attempted(self, attempt: int, lease_until: datetime) -> None:
        self.state = "sending"
        self.attempts = attempt
        self.tries += 1
        self.lease_until = lease_until

    def sent(self) -> None:
        self._sent(channel=self.channel, message=self.message,
                   recipient_role=self.recipient_role, attempt=self.attempts)

    @event("NotificationSent")
    def _sent(self, channel: str, message: str, recipient_role: str, attempt: int) -> None:
        self.state = "sent"
        self.lease_until = None

    def failed(self, error: str, now: datetime, schedule: RetrySchedule) -> None:
        retry_at = schedule.retry_at(self.tries, now)
        self._failed(channel=self.channel, message=self.message,
                     recipient_role=self.recipient_role, attempt=self.attempts, error=error,
                     retry_at=retry_at)

    @event("NotificationFailed")
    def _failed(self, channel: str, message: str, recipient_role: str, attempt: int, error: str,
                retry_at: datetime | None) -> None:
        self.state = "retrying" if retry_at else "dead"
        self.retry_at = retry_at
        self.lease_until = None

    def skip(self, reason: str) -> None:
        if not self.finished:
            self._skipped(reason=reason)

    @event("NotificationSkipped")
    def _skipped(self, reason: str) -> None:
        self.state = "skipped"

    def requeue(self, by: str) -> None:
        """An operator sends a dead letter again, with a fresh round of tries."""
        if self.state != "dead":
            raise NotDue(f"only a dead letter can be queued again; this one is {self.state}")
        self._requeued(by=by)

    @event("DeliveryRequeued")
    def _requeued(self, by: str) -> None:
        self.state = "due"
        self.tries = 0
        self.retry_at = None


class CaseAudience(Aggregate):
    """What notifications remembers of a case's submission: whether the citizen is
    anonymous, so later events of the case never call for the citizen."""

    @staticmethod
    def create_id(case_id: UUID) -> UUID:
        # Derived, not the case id itself: the case's own stream is another store's.
        return audience_id(case_id)

    @classmethod
    def noted(cls, case_id: UUID, anonymous: bool) -> CaseAudience:
        return cls(case_id=case_id, anonymous=anonymous, context={"case_id": str(case_id)})

    @event("AudienceNoted")
    def __init__(self, case_id: UUID, anonymous: bool, context: dict | None = None) -> None:
        # `context` is None in what was recorded before every event carried one.
        self.case_id = case_id
        self.anonymous = anonymous

    def event_context(self) -> dict:
        return {"case_id": str(self.case_id)}


def audience_id(case_id: UUID | str) -> UUID:
    return uuid5(NOTIFICATION_NAMESPACE, f"audience:{case_id}")


class Webhook(Aggregate):
    """An office system's subscription, registered by an operator."""

    create_id = id_from("webhook_id")

    @classmethod
    def register(cls, webhook_id: UUID, url: str, secret: str, area: str | None,
                 office_id: str | None, by: str, seal: Callable[[UUID, str], str]) -> Webhook:
        """`seal` turns the secret into what is recorded: the event keeps only that."""
        if bool(area) == bool(office_id):
            raise ValueError("a webhook subscribes to an area or to an office, not both")
        if area and (not area.isdigit() or len(area) not in (2, 4, 6)):
            raise ValueError("an area is a province (2 digits), district (4) or commune (6) code")
        if not url.startswith(("http://", "https://")):
            raise ValueError("the URL must be http:// or https://")
        if len(secret) < 16:
            raise ValueError("the secret must be at least 16 characters")
        # About no case: its events' context is empty.
        return cls(webhook_id=webhook_id, url=url, area=area, office_id=office_id, by=by,
                   sealed_secret=seal(webhook_id, secret), context={})

    @event("WebhookRegistered")
    def __init__(self, webhook_id: UUID, url: str, area: str | None, office_id: str | None,
                 by: str, sealed_secret: str | None = None, secret: str | None = None,
                 context: dict | None = None) -> None:
        # `secret` in plain text is how the first registrations were recorded; they still
        # replay, and the webhooks table keeps them sealed like the others.
        self.url = url
        self.sealed_secret = sealed_secret
        self.plaintext_secret = secret
        self.area = area
        self.office_id = office_id
        self.removed = False

    @event("WebhookRemoved")
    def remove(self, by: str) -> None:
        self.removed = True


class Notification(Aggregate):
    """What the first version of this service recorded (a notice logged, never sent).
    Kept so that stores holding those events still read them; nothing records it now."""

    create_id = id_from("notification_id")

    @event("NotificationSent")
    def __init__(self, notification_id: UUID, context: dict, channel: str, message: str,
                 recipient_role: str, about_event: str) -> None:
        self.channel = channel

