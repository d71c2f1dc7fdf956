"""The public events: one marshmallow schema per event type, the envelope every event
travels in, and the routing key office systems bind to.

Nothing here may carry personal data: each schema lists the fields that leave the
service, so anything not listed (contacts, descriptions, notes) never reaches the bus.

A sensitive case's events (a `sensitive` category) carry no words at all (the office's
question, the resolution, the findings, a transfer's reason are null) and not their
category (the bucket `sensitive` instead), and travel under a routing key of their own,
`<EventType>.sensitive.<province>.<district>`, which an area's `*.12.1201` or `*.12.*`
never matches: only the ombudsman's subscribers bind it."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, missing, pre_dump, validate

from shared.categories import CASE_TYPES, LEVELS, SENSITIVE, categories, is_sensitive

SCHEMA_VERSION = 1
EXCHANGE = "ourvoice.events"
# The deadlines an office works to: to take a case up, and to resolve it.
DEADLINES = ("acknowledge", "resolve")
# The ways a case comes in (CaseSubmitted's channel).
CHANNELS = ("app", "open311", "sms", "telegram", "office-desk")

# Event ids are derived from where the event was stored, so a relay that publishes the
# same stored event twice publishes the same event_id twice.
EVENT_ID_NAMESPACE = uuid.UUID("5d0c7d8e-8f3e-4f0e-9a43-6f7572566f69")
_EVENT_ID_HASH = hashlib.sha1(EVENT_ID_NAMESPACE.bytes, usedforsecurity=False)


def event_id(source: str, position: int) -> uuid.UUID:
    """`uuid5(EVENT_ID_NAMESPACE, "source:position")`, from a copy of the hash already fed
    the namespace: one per event published or replayed."""
    digest = _EVENT_ID_HASH.copy()
    digest.update(f"{source}:{position}".encode())
    return uuid.UUID(bytes=digest.digest()[:16], version=5)


class Location(Schema):
    class Meta:
        unknown = RAISE

    province = fields.String(required=True, validate=validate.Regexp(r"^\d{2}$"))
    district = fields.String(required=True, validate=validate.Regexp(r"^\d{4}$"))
    commune = fields.String(required=True, validate=validate.Regexp(r"^\d{6}$"))


class EventData(Schema):
    """Base of every event's `data`. Readers ignore fields they do not know, so a newer
    producer can add fields without breaking older consumers."""

    class Meta:
        unknown = EXCLUDE


class CaseSubmitted(EventData):
    type = fields.String(required=True, validate=validate.OneOf(CASE_TYPES))
    category = fields.String(required=True)  # "sensitive" for every sensitive case
    # Only for a sensitive case: the level of the ombudsman it goes to (routing needs it,
    # since the category is not said).
    level = fields.String(validate=validate.OneOf(LEVELS))
    language = fields.String(required=True, validate=validate.OneOf(("km", "en")))
    anonymous = fields.Boolean(required=True)
    # One of CHANNELS (office-desk: staff recorded it for the citizen); not checked on
    # reading, so that a channel added later does not stop older readers.
    channel = fields.String(load_default="app", metadata={
        "description": "how the case came in: app, open311, sms, telegram or office-desk "
                       "(staff recorded it for the citizen at an office's desk)"})
    # The office whose staff recorded the case at its desk (office-desk only), and whether
    # the case is about that office's own conduct: then it is never routed there.
    recorded_by_office = fields.String(allow_none=True, load_default=None, metadata={
        "description": "the office whose staff recorded the case at its desk; null otherwise"})
    about_recording_office = fields.Boolean(load_default=False, metadata={
        "description": "the case is about the recording office's own conduct: it is never "
                       "routed nor transferred to that office"})
    rating = fields.Integer(allow_none=True, load_default=None)  # evaluations only


DUE_DATES = ("acknowledge_due", "resolve_due")


class CarriesDeadlines(EventData):
    """The deadlines running after the event (null: none), so that whoever follows the
    case (the citizen's view) keeps the same deadlines as routing. Stored events keep a
    `deadlines` mapping with warning times and calendars; only the due dates are public.
    Absent (not null) from events stored before they said so: then nothing is known."""

    acknowledge_due = fields.DateTime(allow_none=True)
    resolve_due = fields.DateTime(allow_none=True)

    @pre_dump
    def due_dates(self, event, **_):
        fields_ = {name: getattr(event, name, None) for name in self.fields
                   if name not in DUE_DATES}
        deadlines = self.deadlines_after(event)
        if deadlines is not None:
            for name in ("acknowledge", "resolve"):
                fields_[f"{name}_due"] = (deadlines.get(name) or {}).get("due")
        return fields_

    @staticmethod
    def deadlines_after(event) -> dict | None:
        return getattr(event, "deadlines", None)


class ClearsDeadlines(CarriesDeadlines):
    """An event after which no deadline runs: the office waits for the citizen, or the
    case is resolved or closed."""

    @staticmethod
    def deadlines_after(event) -> dict | None:
        return {}


class CaseRouted(CarriesDeadlines):
    office_id = fields.String(required=True)
    reason = fields.String(required=True)


class CaseAcknowledged(CarriesDeadlines):
    pass  # the acknowledge deadline is met: the resolve one runs on


class InformationRequested(ClearsDeadlines):
    # The office's words to the citizen; the citizen's own words never travel.
    question = fields.String(required=True, allow_none=True)  # null for a sensitive case


class InformationProvided(EventData):
    answers_request = fields.Boolean(required=True)  # false: a message of the citizen's own


class ClockRestarted(CarriesDeadlines):
    """Routing's answer to the citizen's answer: the deadlines run again, due as late as
    the time the office had left when it asked."""


class CaseTransferred(CarriesDeadlines):
    office_id = fields.String(required=True)
    from_office_id = fields.String(required=True)
    reason = fields.String(required=True, allow_none=True)  # null for a sensitive case
    transfers = fields.Integer(required=True)


class CaseResolved(ClearsDeadlines):
    resolution = fields.String(required=True, allow_none=True)  # null for a sensitive case


class FeedbackReceived(EventData):
    satisfied = fields.Boolean(required=True)
    rating = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(1, 5))


class CaseAppealed(EventData):
    pass


class SlaWarning(EventData):
    deadline = fields.String(required=True, validate=validate.OneOf(DEADLINES))
    due_at = fields.DateTime(required=True)


class SlaBreached(SlaWarning):
    pass


class CaseEscalated(CarriesDeadlines):
    office_id = fields.String(required=True)
    from_office_id = fields.String(required=True)
    # breach, appeal, ombudsman-breach, office (the office escalated it, saying why in
    # `explanation`); transfers for cases escalated when transfers ran out, before an
    # office had to escalate them itself.
    reason = fields.String(required=True)
    explanation = fields.String(allow_none=True)  # null for a sensitive case


class OmbudsmanFindingsRecorded(EventData):
    # Both null for a sensitive case.
    findings = fields.String(required=True, allow_none=True)
    recommendation = fields.String(required=True, allow_none=True)


class CaseClosed(ClearsDeadlines):
    # Version 2: why the case closed. Version 1 said nothing; it reads as None.
    outcome = fields.String(required=True, allow_none=True,
                            validate=validate.OneOf(("satisfied", "findings")))


class CaseWithdrawn(EventData):
    pass


class PersonalDataErased(EventData):
    pass


class AttachmentAdded(EventData):
    """A file (evidence) was added to the case: which, what kind and how large, never its
    bytes, its name, nor where to fetch it (offices read it through routing)."""

    attachment_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("photo", "document", "voice")))
    size = fields.Integer(required=True, validate=validate.Range(min=0))


class CaseFileOpened(EventData):
    # Who read the case file, as a role and an office (null for auditors and admins),
    # never a name: the citizen sees that their case was read, and by which office.
    role = fields.String(required=True,
                         validate=validate.OneOf(("staff", "ombudsman", "auditor", "admin")))
    office_id = fields.String(required=True, allow_none=True)


class NotificationSent(EventData):
    channel = fields.String(required=True)
    message = fields.String(required=True)
    recipient_role = fields.String(required=True)


class NotificationFailed(NotificationSent):
    error = fields.String(required=True)


DATA_SCHEMAS: dict[str, type[EventData]] = {
    schema.__name__: schema
    for schema in (
        CaseSubmitted, CaseRouted, CaseAcknowledged, InformationRequested,
        InformationProvided, ClockRestarted, CaseTransferred, CaseResolved, FeedbackReceived,
        CaseAppealed, SlaWarning, SlaBreached, CaseEscalated, OmbudsmanFindingsRecorded,
        CaseClosed, CaseWithdrawn, PersonalDataErased, CaseFileOpened, NotificationSent,
        NotificationFailed, AttachmentAdded,
    )
}
EVENT_TYPES = tuple(DATA_SCHEMAS)
# One instance per schema: building a marshmallow schema costs more than using it, and
# the relay and every consumer use one per event.
_SCHEMA_INSTANCES: dict[str, EventData] = {name: schema() for name, schema in DATA_SCHEMAS.items()}

# The version each event type is published in now; readers upcast older ones.
SCHEMA_VERSIONS: dict[str, int] = {"CaseClosed": 2}

# (event type, version) -> the function that turns that version's `data` into the next one's.
UPCASTERS: dict[tuple[str, int], Callable[[dict], dict]] = {
    ("CaseClosed", 1): lambda data: {**data, "outcome": None},
}

# The words people typed, by event type: a sensitive case's public events carry none.
WORDS: dict[str, tuple[str, ...]] = {
    "InformationRequested": ("question",),
    "CaseTransferred": ("reason",),
    "CaseEscalated": ("explanation",),
    "CaseResolved": ("resolution",),
    "OmbudsmanFindingsRecorded": ("findings", "recommendation"),
}


class Envelope(Schema):
    """What travels on `ourvoice.events`, for every event type."""

    class Meta:
        unknown = RAISE

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    schema_version = fields.Integer(required=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True)
    case_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    sequence = fields.Integer(required=True, validate=validate.Range(min=1))
    office_id = fields.String(required=True, allow_none=True)
    location = fields.Nested(Location, required=True)
    # A case in a sensitive category: no words, no category, its own routing key.
    # Absent from messages published before it was added: those read as not sensitive.
    sensitive = fields.Boolean(load_default=False, metadata={
        "description": "a case in a sensitive category: its data carries no words and no "
                       "category, and it goes under <EventType>.sensitive.<province>.<district>"})
    data = fields.Dict(required=True)


ENVELOPE = Envelope()


def location_of(commune: str) -> dict[str, str]:
    """Official geocodes nest: the commune code starts with its district and province."""
    return {"province": commune[:2], "district": commune[:4], "commune": commune}


def routing_key(event_type: str, location: dict[str, str], sensitive: bool = False) -> str:
    """`CaseRouted.12.1201`; a sensitive case's `CaseRouted.sensitive.12.1201`, four words,
    so that an area's three-word bindings (`*.12.1201`, `*.12.*`) never match it."""
    area = f"{location['province']}.{location['district']}"
    return f"{event_type}.{SENSITIVE}.{area}" if sensitive else f"{event_type}.{area}"


def is_sensitive_event(domain_event: Any) -> bool:
    """Whether a stored event belongs to a sensitive case: its context says so (every
    service puts it there), or it names a sensitive category itself (events stored
    before the context said so: a submission, a routing)."""
    return bool(domain_event.context.get(SENSITIVE) or getattr(domain_event, SENSITIVE, False)
                is True or is_sensitive(getattr(domain_event, "category", None)))


def withhold_words(event_type: str, data: dict) -> dict:
    """A sensitive case's public data: the words null, the category only the bucket (and,
    for its routing, the level of the ombudsman)."""
    data = {**data, **{name: None for name in WORDS.get(event_type, ()) if name in data}}
    if "category" in data:
        category = categories().get(data["category"])
        if category is not None:
            data["level"] = category.level
        data["category"] = SENSITIVE
    return data


def _uuid(value: Any) -> uuid.UUID:
    # Most are UUIDs already: making them again from their strings is a cost per event.
    return value if type(value) is uuid.UUID else uuid.UUID(str(value))


# A schema's fields as `event_data` reads them: (name, field, the type a stored event
# already holds that field's value in, so that dumping it would only copy it).
_AS_STORED = {fields.String: str, fields.Integer: int, fields.Boolean: bool,
              fields.DateTime: datetime}


def _readings(schema: EventData) -> tuple[tuple[str, fields.Field, type | None], ...]:
    found = []
    for name, field in schema.fields.items():
        if field.data_key or field.attribute or field.dump_default is not missing:
            raise TypeError(f"{type(schema).__name__}.{name}: event_data reads fields by name")
        found.append((name, field, _AS_STORED.get(type(field))))
    return tuple(found)


_READINGS = {name: _readings(schema) for name, schema in _SCHEMA_INSTANCES.items()}
_INSTANTS = {name: tuple(n for n, field, _ in readings if isinstance(field, fields.DateTime))
             for name, readings in _READINGS.items()}


def event_data(domain_event: Any) -> dict | None:
    """A stored event's public `data`, the fields its schema publishes, with Python
    values (instants as datetimes); None for events that stay inside.

    The same fields and values as the schema's `dump`, without its cost per field (a
    rebuild makes millions of these): a value already of the type its field publishes
    is taken as it is, any other is turned by the field itself; dumping validates
    nothing either way. Events that carry deadlines are read through the schema's own
    `due_dates`."""
    event_type = type(domain_event).__name__
    schema = _SCHEMA_INSTANCES.get(event_type)
    if schema is None:
        return None
    source = schema.due_dates(domain_event) if isinstance(schema, CarriesDeadlines) else None
    data = {}
    for name, field, as_stored in _READINGS[event_type]:
        value = getattr(domain_event, name, missing) if source is None \
            else source.get(name, missing)
        if value is None or type(value) is as_stored:
            data[name] = value
        elif value is not missing:
            data[name] = field._serialize(value, name, domain_event)
    return data


def envelope_of(source: str, position: int, domain_event: Any) -> dict | None:
    """The envelope of a stored domain event with Python values (ids as UUIDs, instants
    as datetimes, in `data` too); None for events that stay inside. `public_event` is
    what goes on the wire; a rebuild uses this as it is, as the consumer reads it."""
    data = event_data(domain_event)
    if data is None:
        return None
    event_type = type(domain_event).__name__
    context = domain_event.context
    sensitive = is_sensitive_event(domain_event)
    return {
        "event_id": event_id(source, position),
        "event_type": event_type,
        "schema_version": SCHEMA_VERSIONS.get(event_type, SCHEMA_VERSION),
        "occurred_at": domain_event.timestamp,
        # An event recorded on an aggregate other than the case (a notification) names
        # its case in its context.
        "case_id": _uuid(context.get("case_id") or domain_event.originator_id),
        "tracking_code": context["tracking_code"],
        "sequence": domain_event.originator_version,
        "office_id": getattr(domain_event, "office_id", None) or context.get("office_id"),
        "location": location_of(context["commune"]),
        "sensitive": sensitive,
        "data": withhold_words(event_type, data) if sensitive else data,
    }


def public_event(source: str, position: int, domain_event: Any) -> dict | None:
    """The envelope of a stored domain event as it is published (JSON values), or None
    for events that stay inside."""
    envelope = envelope_of(source, position, domain_event)
    if envelope is None:
        return None
    occurred_at: datetime = envelope["occurred_at"]
    data = envelope["data"]
    for name in _INSTANTS[envelope["event_type"]]:
        if data.get(name) is not None:
            data[name] = data[name].isoformat()
    return {**envelope, "event_id": str(envelope["event_id"]),
            "occurred_at": occurred_at.isoformat(), "case_id": str(envelope["case_id"])}


def upcast(envelope: dict) -> None:
    """Bring an older version's data up to the current one, step by step, so consumers
    only ever read the current shape. A newer version than we know is read as it is:
    fields we do not know are ignored."""
    event_type = envelope["event_type"]
    while (event_type, envelope["schema_version"]) in UPCASTERS:
        envelope["data"] = UPCASTERS[(event_type, envelope["schema_version"])](envelope["data"])
        envelope["schema_version"] += 1


class MalformedEvent(ValueError):
    """A message that is not a public event we can read; it belongs in the dead letters."""


def read_event(body: Any) -> dict:
    """Validate an envelope and its data; raise MalformedEvent with the reasons."""
    if not isinstance(body, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(body).__name__}")
    try:
        envelope = ENVELOPE.load(body)
        upcast(envelope)
        envelope["data"] = _SCHEMA_INSTANCES[envelope["event_type"]].load(envelope["data"])
    except ValidationError as error:
        raise MalformedEvent(str(error.messages)) from error
    return envelope


# The status a case has after each event, as citizens, offices and reports see it.
STATUS_AFTER: dict[str, str] = {
    "CaseSubmitted": "submitted",
    "CaseRouted": "routed",
    "CaseAcknowledged": "acknowledged",
    "InformationRequested": "waiting-for-citizen",
    "InformationProvided": "acknowledged",
    "CaseTransferred": "routed",
    "CaseResolved": "resolved",
    "CaseAppealed": "escalated",
    "CaseEscalated": "escalated",
    "OmbudsmanFindingsRecorded": "escalated",
    "CaseClosed": "closed",
    "CaseWithdrawn": "withdrawn",
}


def status_after(event_type: str, data: dict) -> str | None:
    """The status an event leaves the case in, or None when it leaves it where it was:
    a message the citizen sends of their own accord (not an answer to the office)."""
    if event_type == "InformationProvided" and not data.get("answers_request"):
        return None
    return STATUS_AFTER.get(event_type)
