"""Routing: sends each case to its office, keeps the offices' queues and deadlines, and
takes what is late or appealed to the ombudsman."""

from __future__ import annotations

import os
import random
import time
import unicodedata
from datetime import datetime
from functools import cache
from pathlib import Path
from uuid import UUID

import eventlet
import yaml
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from nameko.timer import timer

from services.routing import views
from services.routing.casefile import OPEN_ATTEMPTS, CaseFiles
from services.routing.commands import COMMANDS
from services.routing.console import Console
from services.routing.deadlines import Policies, policies_from
from services.routing.directory import amended, base_directory, follow_merges
from services.routing.domain import ACTIONS, Case, InvalidTransition
from services.routing.replies import templates
from services.routing.sessions import Sessions
from shared import access, clock
from shared.categories import category_of
from shared.consumer import NotYet, on_events
from shared.db import DatabaseProvider, tracking_ddl
from shared.offices import KINDS
from shared.rpc import rpc
from shared.store import CaseStore, EventStore
from shared.web import HealthAndSpec, HttpError, Strict, endpoint, forbidden, not_found

DEFAULT_POLICIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "sla.yaml"
SWEEP_SECONDS = float(os.environ.get("OURVOICE_SWEEP_SECONDS", "1"))
DIRECTORY_SECONDS = 2.0
_directory_cache: dict = {}
# Built now, as the service starts, rather than on the first case it routes (building the
# 2,132 offices from the administrative units takes most of a second).
base_directory()


@cache
def policies() -> Policies:
    path = Path(os.environ.get("OURVOICE_SLA_POLICIES", DEFAULT_POLICIES))
    return policies_from(yaml.safe_load(path.read_text(encoding="utf-8")))


class Routing(CaseStore):
    name = "routing"


# -- schemas -----------------------------------------------------------------------

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


class CaseState(Schema):
    case_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    status = fields.String(required=True)
    office_id = fields.String(required=True)
    acknowledge_due = fields.DateTime(allow_none=True)
    resolve_due = fields.DateTime(allow_none=True)
    transfers = fields.Integer(required=True)
    assignee = fields.String(allow_none=True)


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


def state_of(case: Case) -> dict:
    return CaseState().dump({
        "case_id": case.id, "tracking_code": case.tracking_code, "status": case.status,
        "office_id": case.office_id, "acknowledge_due": case.acknowledge_due,
        "resolve_due": case.resolve_due, "transfers": case.transfers,
        "assignee": case.assignee,
    })


class OfficesQuery(Strict):
    level = fields.String(validate=validate.OneOf(("commune", "district", "province",
                                                   "national")))
    kind = fields.String(validate=validate.OneOf(tuple(KINDS)))
    province = fields.String(validate=validate.Length(max=10))
    district = fields.String(validate=validate.Length(max=10))
    q = fields.String(validate=validate.Length(min=1, max=100),
                      metadata={"description": "part of the office's Khmer or English name"})


def name_matches(office, words: str) -> bool:
    """Whether a part of a name, as someone types it, is in the office's English or
    Khmer name: any case, Khmer in either of its code point orders."""
    wanted = unicodedata.normalize("NFC", words).casefold().strip()
    return any(wanted in unicodedata.normalize("NFC", name).casefold()
               for name in (office.name_en, office.name_km))


class Service(CaseFiles, Sessions, Console, HealthAndSpec):
    name = "routing"
    title = "Our Voice routing"
    commands = COMMANDS

    store = EventStore(Routing, projections=views.PROJECTIONS)
    db = DatabaseProvider(tracking_ddl("routing"))

    # -- the directory ---------------------------------------------------------------
    def directory(self) -> dict:
        """The directory with operators' amendments, read again at most every few seconds:
        amendments are rare and every routed case needs the directory."""
        cached = _directory_cache.get("offices")
        if cached is None or time.monotonic() - _directory_cache["at"] > DIRECTORY_SECONDS:
            with self.db.transaction() as cursor:
                cached = amended(base_directory(), views.load_amendments(cursor))
            _directory_cache.update(offices=cached, at=time.monotonic())
        return cached

    @endpoint("GET", "/v1/offices", allow=(access.PUBLIC,), query=OfficesQuery,
              response=OfficeOut(many=True))
    def list_offices(self, request, query):
        """The office directory; filter by `level`, `kind`, `province`, `district`, and
        `q`, part of a Khmer or English name (the transfer picker's search)."""
        filters = {k: query.get(k) for k in ("level", "kind", "province", "district")}
        offices = [
            office.as_dict() for office in self.directory().values()
            if all(not wanted or getattr(office, key) == wanted
                   for key, wanted in filters.items())
            and (not query.get("q") or name_matches(office, query["q"]))
        ]
        return OfficeOut(many=True).dump(sorted(offices, key=lambda o: o["id"]))

    @rpc
    def office_contact(self, office_id: str) -> dict | None:
        """How to reach an office (the directory with operators' amendments), for
        notifications to its staff; None for an office the directory does not know."""
        office = self.directory().get(office_id)
        if office is None:
            return None
        return {"office_id": office.id, "name_en": office.name_en, "name_km": office.name_km,
                "email": office.email, "phone": office.phone, "active": office.active}

    @rpc(callers=("intake",))
    def words_for_citizen(self, case_id: str) -> dict | None:
        """The office's last question, the resolution and the ombudsman's findings of a
        sensitive case, whose public events carry no words: for intake, which shows them
        to the citizen alone. None for any other case."""
        try:
            case = self.store.repository.get(UUID(case_id))
        except (ValueError, AggregateNotFoundError):
            return None
        return case.words_for_citizen()

    # -- events from other services --------------------------------------------------
    @on_events("routing")
    def handle_event(self, event, tracking):
        kind = event["event_type"]
        case_id = UUID(str(event["case_id"]))
        occurred_at: datetime = event["occurred_at"]
        if kind == "CaseSubmitted":
            directory = self.directory()
            case = Case.route(
                case_id=case_id, tracking_code=event["tracking_code"],
                commune=event["location"]["commune"], case_type=event["data"]["type"],
                category=category_of(event["data"]["category"], event["data"].get("level")),
                received_at=occurred_at, language=event["data"]["language"],
                policies=policies(), redirect=lambda office: follow_merges(directory, office))
        else:
            try:
                case = self.store.repository.get(case_id)
            except AggregateNotFoundError:
                raise NotYet(f"{kind} before the case was routed") from None
            if kind == "InformationProvided" and event["data"]["answers_request"]:
                case.information_provided(now=occurred_at)
            elif kind == "FeedbackReceived":
                case.feedback(satisfied=event["data"]["satisfied"])
            elif kind == "CaseAppealed":
                try:
                    case.appeal(now=occurred_at, policies=policies())
                except InvalidTransition:
                    return  # an appeal of a case no longer resolved changes nothing
            elif kind == "CaseWithdrawn":
                case.withdraw()
        self.store.record(case, tracking=tracking)

    # -- time ------------------------------------------------------------------------
    @timer(interval=SWEEP_SECONDS)
    def sweep_deadlines(self):
        """Record the warnings and breaches now due. Several instances may sweep at once:
        the second to record the same breach fails on the case's version and moves on."""
        now = clock.now()
        with self.db.transaction() as cursor:
            due = views.due_cases(cursor, now, limit=500)
        for case_id in due:
            case = self.store.repository.get(case_id)
            case.check_deadlines(now, policies())
            try:
                self.store.record(case)
            except IntegrityError:
                pass  # another instance recorded it first

    # -- office work -----------------------------------------------------------------
    def _act(self, case_id: str, principal: access.Principal, roles: tuple, act) -> dict:
        """Run an office's command and record it. When the case changed meanwhile, only
        readings of its file (which change nothing the reader decided on) let the command
        run again on the new state; anything else is a 409: reload and decide again."""
        for attempt in range(OPEN_ATTEMPTS):
            try:
                case = self.store.repository.get(UUID(case_id))
            except (ValueError, AggregateNotFoundError):
                raise not_found("case") from None
            if principal.role not in roles or not principal.works_at(case.office_id):
                raise forbidden(f"only the {' or '.join(roles)} of {case.office_id} may do this")
            seen = case.version
            try:
                act(case)
            except InvalidTransition as refusal:
                raise HttpError(409, {"status": [str(refusal)]}) from None
            try:
                self.store.record(case)
            except IntegrityError:
                since = self.store.events.get(case.id, gt=seen)
                if all(type(e).__name__ == "CaseFileOpened" for e in since):
                    eventlet.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                    continue
                break
            return state_of(case)
        raise HttpError(409, {"case": [
            "someone else changed this case at the same moment; reload it and try again"]})

    @endpoint("POST", "/v1/cases/{case_id}/acknowledge", allow=("staff", "ombudsman"),
              body=Nothing, response=CaseState)
    def acknowledge(self, request, case_id, principal, payload):
        """The office has seen the case."""
        return self._act(case_id, principal, ("staff", "ombudsman"),
                         lambda case: case.acknowledge(by=principal.id))

    @endpoint("POST", "/v1/cases/{case_id}/request-info", allow=("staff", "ombudsman"),
              body=Question, response=CaseState)
    def request_information(self, request, case_id, principal, payload):
        """Ask the citizen a question, in words of the office's own or a standard one;
        the deadline clock stops until they answer."""
        return self._act(case_id, principal, ACTIONS["request-info"],
                         lambda case: case.request_information(
                             self._words(case, payload, "question"), by=principal.id,
                             now=clock.now()))

    @endpoint("POST", "/v1/cases/{case_id}/resolve", allow=("staff", "ombudsman"),
              body=Resolution, response=CaseState)
    def resolve(self, request, case_id, principal, payload):
        """Tell the citizen how the case was resolved, in words of the office's own or a
        standard resolution."""
        return self._act(case_id, principal, ACTIONS["resolve"],
                         lambda case: case.resolve(self._words(case, payload, "resolution"),
                                                   by=principal.id))

    def _words(self, case: Case, payload: dict, kind: str) -> str:
        """The office's words, or the template's text in the language of the case (asked
        of intake for cases routed before routing kept the language)."""
        if kind in payload:
            return payload[kind]
        template = templates().get(payload["template"])
        if template is None or template.kind != kind:
            raise HttpError(400, {"template": [f"no {kind} template {payload['template']!r}; "
                                               "see GET /v1/reply-templates"]})
        language = case.language
        if language is None:
            language = (self._ask_intake("case_file", str(case.id), "staff") or {}).get("language")
        return template.text_in(language)

    @endpoint("POST", "/v1/cases/{case_id}/transfer", allow=("staff",), body=Transfer,
              response=CaseState)
    def transfer(self, request, case_id, principal, payload):
        """Send a misrouted case to the office responsible, with the reason."""
        directory = self.directory()
        target = payload["office_id"]
        if target not in directory or not directory[target].active:
            raise HttpError(400, {"office_id": ["no such active office"]})
        target = follow_merges(directory, target)
        return self._act(case_id, principal, ("staff",),
                         lambda case: case.transfer(target, payload["reason"], by=principal.id,
                                                    now=clock.now(), policies=policies()))

    @endpoint("POST", "/v1/cases/{case_id}/escalate", allow=ACTIONS["escalate"],
              body=Escalation, response=CaseState)
    def escalate(self, request, case_id, principal, payload):
        """Hand the case to the ombudsman above the office, with the reason: a case the
        office cannot settle, or one transferred as often as allowed."""
        return self._act(case_id, principal, ACTIONS["escalate"],
                         lambda case: case.escalate_by_office(payload["reason"], by=principal.id,
                                                              now=clock.now(),
                                                              policies=policies()))

    @endpoint("POST", "/v1/cases/{case_id}/notes", allow=("staff", "ombudsman"), body=Note,
              response=CaseState)
    def add_note(self, request, case_id, principal, payload):
        """An internal note; the citizen never sees it."""
        return self._act(case_id, principal, ("staff", "ombudsman"),
                         lambda case: case.add_note(payload["text"], by=principal.id))

    @endpoint("POST", "/v1/cases/{case_id}/findings", allow=("ombudsman",), body=Findings,
              response=CaseState)
    def record_findings(self, request, case_id, principal, payload):
        """The ombudsman's findings and recommendation."""
        return self._act(case_id, principal, ("ombudsman",),
                         lambda case: case.record_findings(payload["findings"],
                                                           payload["recommendation"],
                                                           by=principal.id))

    @endpoint("POST", "/v1/cases/{case_id}/close", allow=("ombudsman",), body=Nothing,
              response=CaseState)
    def close(self, request, case_id, principal, payload):
        """The ombudsman closes the case after recording findings."""
        return self._act(case_id, principal, ("ombudsman",),
                         lambda case: case.close(by=principal.id))
