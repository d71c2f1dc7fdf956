"""The office's commands on a case: acknowledge, ask the citizen, resolve, transfer,
escalate, note, assign, and the ombudsman's findings and closing. Each parses the
request, lets routing's application decide and record, and answers the case's state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.routing.application import Collided, NotAllowed, UnknownCase
from services.routing.directory import follow_merges
from services.routing.domain import ACTIONS, Case, InvalidTransition
from services.routing.replies import templates
from services.routing.schemas import (
    Assign,
    CaseState,
    Escalation,
    Findings,
    Note,
    Nothing,
    Question,
    Resolution,
    Transfer,
)
from shared import accounts, clock
from shared.web import HttpError, endpoint, forbidden, not_found


@contextmanager
def answered_as_http() -> Iterator[None]:
    """The application's refusals as the API answers them."""
    try:
        yield
    except UnknownCase:
        raise not_found("case") from None
    except NotAllowed as refusal:
        raise forbidden(str(refusal)) from None
    except InvalidTransition as refusal:
        raise HttpError(409, {"status": [str(refusal)]}) from None
    except Collided as collision:
        raise HttpError(409, {"case": [str(collision)]}) from None


def state_of(case: Case) -> dict:
    return CaseState().dump({
        "case_id": case.id, "tracking_code": case.tracking_code, "status": case.status,
        "office_id": case.office_id, "acknowledge_due": case.acknowledge_due,
        "resolve_due": case.resolve_due, "transfers": case.transfers,
        "assignee": case.assignee,
    })


class Actions:
    """Mixed into routing's Service, whose store, database, directory and intake it uses."""

    @endpoint("POST", "/v1/cases/{case_id}/acknowledge", allow=ACTIONS["acknowledge"],
              body=Nothing, response=CaseState)
    def acknowledge(self, request, case_id, principal, payload):
        """The office has seen the case."""
        with answered_as_http():
            return state_of(self.store.acknowledge(case_id, principal))

    @endpoint("POST", "/v1/cases/{case_id}/request-info", allow=ACTIONS["request-info"],
              body=Question, response=CaseState)
    def request_information(self, request, case_id, principal, payload):
        """Ask the citizen a question, in words of the office's own or a standard one;
        the deadline clock stops until they answer."""
        with answered_as_http():
            return state_of(self.store.request_information(
                case_id, principal, lambda case: self._words(case, payload, "question"),
                now=clock.now()))

    @endpoint("POST", "/v1/cases/{case_id}/resolve", allow=ACTIONS["resolve"],
              body=Resolution, response=CaseState)
    def resolve(self, request, case_id, principal, payload):
        """Tell the citizen how the case was resolved, in words of the office's own or a
        standard resolution."""
        with answered_as_http():
            return state_of(self.store.resolve(
                case_id, principal, lambda case: self._words(case, payload, "resolution")))

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

    @endpoint("POST", "/v1/cases/{case_id}/transfer", allow=ACTIONS["transfer"], body=Transfer,
              response=CaseState)
    def transfer(self, request, case_id, principal, payload):
        """Send a misrouted case to the office responsible, with the reason."""
        directory = self.directory()
        target = payload["office_id"]
        if target not in directory or not directory[target].active:
            raise HttpError(400, {"office_id": ["no such active office"]})
        with answered_as_http():
            return state_of(self.store.transfer(case_id, principal,
                                                follow_merges(directory, target),
                                                payload["reason"], now=clock.now()))

    @endpoint("POST", "/v1/cases/{case_id}/escalate", allow=ACTIONS["escalate"],
              body=Escalation, response=CaseState)
    def escalate(self, request, case_id, principal, payload):
        """Hand the case to the ombudsman above the office, with the reason: a case the
        office cannot settle, or one transferred as often as allowed."""
        with answered_as_http():
            return state_of(self.store.escalate(case_id, principal, payload["reason"],
                                                now=clock.now()))

    @endpoint("POST", "/v1/cases/{case_id}/notes", allow=ACTIONS["note"], body=Note,
              response=CaseState)
    def add_note(self, request, case_id, principal, payload):
        """An internal note; the citizen never sees it."""
        with answered_as_http():
            return state_of(self.store.add_note(case_id, principal, payload["text"]))

    @endpoint("POST", "/v1/cases/{case_id}/findings", allow=ACTIONS["findings"], body=Findings,
              response=CaseState)
    def record_findings(self, request, case_id, principal, payload):
        """The ombudsman's findings and recommendation."""
        with answered_as_http():
            return state_of(self.store.record_findings(case_id, principal, payload["findings"],
                                                       payload["recommendation"]))

    @endpoint("POST", "/v1/cases/{case_id}/close", allow=ACTIONS["close"], body=Nothing,
              response=CaseState)
    def close(self, request, case_id, principal, payload):
        """The ombudsman closes the case after recording findings."""
        with answered_as_http():
            return state_of(self.store.close_case(case_id, principal))

    @endpoint("POST", "/v1/cases/{case_id}/assign", allow=ACTIONS["assign"], body=Assign,
              errors={409: "the case is no longer open, or changed meanwhile"})
    def assign(self, request, case_id, principal, payload):
        """Who at the office works the case: one of its active staff or ombudsmen (any
        of them may take a case themselves)."""
        staff_id = payload["staff_id"]
        with answered_as_http():
            case = self.store.case(case_id)
            if principal.works_at(case.office_id) and staff_id != principal.id:
                self._require_colleague(staff_id, case.office_id)
            return state_of(self.store.assign(case_id, principal, staff_id))

    def _require_colleague(self, staff_id: str, office_id: str) -> None:
        """The assignee must be an active staff or ombudsman account of the office (a
        400 naming the field otherwise: the request, not the case, is wrong)."""
        with self.db.transaction() as cursor:
            account = accounts.find(cursor, staff_id)
        if account is None or not account.active or account.office_id != office_id \
                or account.role not in ("staff", "ombudsman"):
            raise HttpError(400, {"staff_id": [f"no active staff or ombudsman account of "
                                               f"{office_id} with this username"]})
