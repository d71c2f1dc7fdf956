"""Routing's requests and answers as they travel: the marshmallow schemas of its HTTP
API, which its OpenAPI document is made from."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.routing.readmodels import QUEUE_STATUSES
from shared.categories import CASE_TYPES
from shared.offices import KINDS
from shared.web import Strict

DEFAULT_PAGE, MAX_PAGE = 50, 500

# -- the office's commands on a case -------------------------------------------------

TEXT = validate.Length(min=1, max=4000)


class WordsOrTemplate(Strict):
    """The office's own words, or the id of a standard reply (GET /v1/reply-templates),
    which the citizen reads in the language of their case: one or the other."""

    words: str  # the field holding the office's own words
    template = fields.String(validate=validate.Length(min=1, max=100))

    @validates_schema
    def one_of_them(self, data, **_):
        if (self.words in data) == ("template" in data):
            raise ValidationError(f"give either {self.words} or template", self.words)


class Question(WordsOrTemplate):
    words = "question"
    question = fields.String(validate=TEXT)


class Resolution(WordsOrTemplate):
    words = "resolution"
    resolution = fields.String(validate=TEXT)


class Transfer(Strict):
    office_id = fields.String(required=True)
    reason = fields.String(required=True, validate=TEXT)


class Escalation(Strict):
    reason = fields.String(required=True, validate=TEXT)


class Note(Strict):
    text = fields.String(required=True, validate=TEXT)


class Findings(Strict):
    findings = fields.String(required=True, validate=TEXT)
    recommendation = fields.String(required=True, validate=TEXT)


class Nothing(Strict):
    pass


class DeskCase(Schema):
    """A case staff record for a citizen, passed on to intake as it came: intake checks
    it (the fields of its POST /v1/cases, the citizen's consent, about_this_office)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=validate.OneOf(CASE_TYPES))
    category = fields.String(required=True)
    description = fields.String()
    location = fields.Dict(required=True)
    language = fields.String()
    complainant = fields.Dict()
    rating = fields.Raw()
    consent = fields.Dict(required=True, metadata={
        "description": '{"given": true, "how": "spoken" or "signed form"}'})
    about_this_office = fields.Raw()


class DeskRecorded(Schema):
    case_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    citizen_token = fields.String(required=True)
    status = fields.String(required=True)


class Assign(Strict):
    staff_id = fields.String(required=True, validate=validate.Length(min=1, max=100))


class CaseState(Schema):
    case_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    status = fields.String(required=True)
    office_id = fields.String(required=True)
    acknowledge_due = fields.DateTime(allow_none=True)
    resolve_due = fields.DateTime(allow_none=True)
    transfers = fields.Integer(required=True)
    assignee = fields.String(allow_none=True)


# -- the directory ------------------------------------------------------------------

class OfficeOut(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    level = fields.String(required=True)
    area = fields.String(required=True)
    province = fields.String(allow_none=True)
    district = fields.String(allow_none=True)
    name_en = fields.String(required=True)
    name_km = fields.String(required=True)
    merged_into = fields.String(allow_none=True)
    address = fields.String()
    phone = fields.String()
    email = fields.String()
    active = fields.Boolean()


class OfficesQuery(Strict):
    level = fields.String(validate=validate.OneOf(("commune", "district", "province",
                                                   "national")))
    kind = fields.String(validate=validate.OneOf(tuple(KINDS)))
    province = fields.String(validate=validate.Length(max=10))
    district = fields.String(validate=validate.Length(max=10))
    q = fields.String(validate=validate.Length(min=1, max=100),
                      metadata={"description": "part of the office's Khmer or English name"})


# -- the case file, the queue, the standard replies ---------------------------------

class Names(Schema):
    en = fields.String(required=True)
    km = fields.String(required=True)


class Unit(Schema):
    code = fields.String(required=True)
    name_en = fields.String(required=True)
    name_km = fields.String(required=True)


class Place(Schema):
    province = fields.Nested(Unit, allow_none=True)
    district = fields.Nested(Unit, allow_none=True)
    commune = fields.Nested(Unit, allow_none=True)


class OfficeName(Schema):
    id = fields.String(required=True)
    name_en = fields.String(required=True)
    name_km = fields.String(required=True)


class Deadline(Schema):
    name = fields.String(required=True)
    state = fields.String(required=True,
                          validate=validate.OneOf(("running", "paused", "met", "breached")))
    due_at = fields.DateTime(allow_none=True)


class Said(Schema):
    text = fields.String(allow_none=True)  # null when the reader may not read the words
    by = fields.String(allow_none=True)
    at = fields.DateTime(required=True)


class CitizenMessage(Schema):
    text = fields.String(allow_none=True)
    at = fields.DateTime(required=True)
    answers_request = fields.Boolean(required=True)


class Move(Schema):
    from_office_id = fields.String(required=True)
    office_id = fields.String(required=True)
    reason = fields.String(allow_none=True)
    by = fields.String(allow_none=True)
    at = fields.DateTime(required=True)


class EscalationOut(Move):
    # Why: breach, appeal, ombudsman-breach, or office (the office's own words follow).
    explanation = fields.String(allow_none=True)


class FeedbackOut(Schema):
    satisfied = fields.Boolean(required=True)
    rating = fields.Integer(allow_none=True)
    comment = fields.String(allow_none=True)
    at = fields.DateTime(required=True)


class FindingsOut(Schema):
    findings = fields.String(allow_none=True)
    recommendation = fields.String(allow_none=True)
    by = fields.String(allow_none=True)
    at = fields.DateTime(required=True)


class TimelineEntry(Schema):
    event_type = fields.String(required=True)
    at = fields.DateTime(required=True)
    by = fields.String(allow_none=True)
    summary = fields.String(required=True)


class AttachmentOut(Schema):
    """A file the citizen or an office added: its facts for every reader of the case
    file, its bytes at `url` (and a photo's small preview at `thumbnail_url`) for those
    who may open it."""

    attachment_id = fields.UUID(required=True)
    kind = fields.String(required=True, metadata={"description": "photo, document or voice"})
    media_type = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "bytes, as cleaned"})
    sha256 = fields.String(required=True, metadata={"description": "of the cleaned bytes"})
    removed = fields.List(fields.String(), metadata={
        "description": "what cleaning took out of the file (its location, its author...)"})
    added_by = fields.String(required=True, metadata={
        "description": "citizen, staff or ombudsman"})
    at = fields.DateTime(required=True)
    erased = fields.Boolean(required=True)
    url = fields.String(required=True, metadata={
        "description": "where routing serves the file (410 once erased)"})
    thumbnail_url = fields.String(allow_none=True, metadata={
        "description": "a photo's preview; null for other kinds"})


class CaseFileOut(Schema):
    case_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    type = fields.String(required=True)
    category = fields.String(required=True)
    category_label = fields.Nested(Names, required=True)
    sensitive = fields.Boolean(required=True)
    language = fields.String(allow_none=True)
    channel = fields.String(required=True)
    submitted_at = fields.DateTime(required=True)
    status = fields.String(required=True)
    office = fields.Nested(OfficeName, required=True)
    place = fields.Nested(Place, required=True)
    assignee = fields.String(allow_none=True)
    deadlines = fields.List(fields.Nested(Deadline))
    description = fields.String(allow_none=True)
    words_hidden = fields.Boolean(required=True)
    rating = fields.Integer(allow_none=True)
    messages = fields.List(fields.Nested(CitizenMessage))
    questions = fields.List(fields.Nested(Said))
    notes = fields.List(fields.Nested(Said))
    transfers = fields.List(fields.Nested(Move))
    escalations = fields.List(fields.Nested(EscalationOut))
    resolution = fields.Nested(Said, allow_none=True)
    feedback = fields.List(fields.Nested(FeedbackOut))
    findings = fields.Nested(FindingsOut, allow_none=True)
    timeline = fields.List(fields.Nested(TimelineEntry))
    attachments = fields.List(fields.Nested(AttachmentOut))
    can = fields.List(fields.String())
    version = fields.Integer(required=True)


class ByTrackingCode(Strict):
    tracking_code = fields.String(required=True, validate=validate.Length(min=1, max=40))


class AttachmentQuery(Strict):
    variant = fields.String(load_default="file", validate=validate.OneOf(("file", "thumbnail")),
                            metadata={"description": "the file, or a photo's preview"})


class QueueQuery(Strict):
    status = fields.String(validate=validate.OneOf(QUEUE_STATUSES))
    overdue = fields.Boolean()
    due_within_hours = fields.Integer(validate=validate.Range(min=0, max=24 * 366))
    type = fields.String(validate=validate.OneOf(CASE_TYPES))
    category = fields.String(validate=validate.Length(min=1, max=100))
    assignee = fields.String(validate=validate.Length(min=1, max=100),
                             metadata={"description": "`me` or a username"})
    limit = fields.Integer(load_default=DEFAULT_PAGE, validate=validate.Range(min=1, max=MAX_PAGE))
    cursor = fields.String(validate=validate.Length(min=1, max=200),
                           metadata={"description": "next_cursor of the page before"})


class QueueEntry(Schema):
    case_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    status = fields.String(required=True)
    type = fields.String(required=True)
    category = fields.String(required=True)
    routed_at = fields.DateTime(required=True)
    acknowledge_due = fields.DateTime(allow_none=True)
    resolve_due = fields.DateTime(allow_none=True)
    overdue = fields.Boolean(required=True)
    transfers = fields.Integer(required=True)
    assignee = fields.String(allow_none=True)
    first_line = fields.String(allow_none=True)  # null for a sensitive case but to its ombudsman


class OfficeQueue(Schema):
    office_id = fields.String(required=True)
    total = fields.Integer(required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    cases = fields.List(fields.Nested(QueueEntry))
    next_cursor = fields.String(allow_none=True)


class ReplyTemplateOut(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    title = fields.Nested(Names, required=True)
    text = fields.Nested(Names, required=True)


# -- staff sessions -------------------------------------------------------------------

class Login(Strict):
    username = fields.String(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    totp = fields.String(validate=validate.Length(min=1, max=16))
    new_password = fields.String(validate=validate.Length(min=1, max=1000))


class AccountOut(Schema):
    username = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True)
    office_id = fields.String(allow_none=True)


class SessionOut(Schema):
    session_token = fields.String(required=True)
    expires_at = fields.DateTime(required=True)
    account = fields.Nested(AccountOut, required=True)


class CurrentSession(AccountOut):
    expires_at = fields.DateTime(required=True)


class StaffMember(Schema):
    username = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True)
