"""Intake's part of a case's history, for reporting's audit (see shared/history.py):
the case's own stream, with the contact as an auditor may know of it (sealed, absent or
erased) and the status each citizen's or operator's event leaves the case in."""

from __future__ import annotations

from uuid import UUID

from services.intake.application import Intake
from shared.events import status_after
from shared.history import CaseHistory, entry, public_data
from shared.logs import stream_events

# What a citizen does is recorded by intake; intake's other events name who did them.
CITIZEN_EVENTS = ("CaseSubmitted", "InformationProvided", "FeedbackReceived", "CaseAppealed",
                  "CaseWithdrawn")


def _contact(personal_data: str | None) -> str | None:
    return {"kept": "sealed"}.get(personal_data, personal_data)


def _actor(domain_event) -> dict | None:
    if getattr(domain_event, "by", None) is not None:
        return None  # reporting resolves who it names
    if hasattr(domain_event, "erased_by"):
        return {"role": domain_event.erased_by}
    if hasattr(domain_event, "added_by"):  # a file: the citizen, or staff or ombudsman
        adder = {"role": domain_event.added_by}
        return {**adder, "office_id": domain_event.adder_office_id} \
            if domain_event.adder_office_id else adder
    if type(domain_event).__name__ in CITIZEN_EVENTS:
        return {"role": "citizen"}
    return {"role": "system"}


def case_history(cursor, case_id: str) -> list[dict]:
    """Every event of the case in intake's store, in log order. Once the case's key was
    destroyed its contact reads as erased in every entry."""
    events = stream_events(cursor, Intake, [UUID(str(case_id))])
    case = None
    for _, domain_event in events:  # the case as intake has it now: is it erased?
        case = domain_event.mutate(case)
    contact = _contact(getattr(case, "personal_data", "none"))
    found, case = [], None
    for position, domain_event in events:
        case = domain_event.mutate(case)
        event_type = type(domain_event).__name__
        state = {"personal_data": _contact(case.personal_data)}
        if contact == "erased" and state["personal_data"] == "sealed":
            state["personal_data"] = "erased"  # the key is gone: nothing opens it now
        if status := status_after(event_type, vars(domain_event)):
            state["status"] = status
        data = public_data(domain_event)
        if event_type == "CaseSubmitted":
            data["contact"] = contact
        found.append(entry("intake", position, domain_event, state=state,
                           actor=_actor(domain_event), data=data))
    return found


# Declared on the Service class, for the composition layer (see shared/history.py).
HISTORY = CaseHistory(Intake, case_history)
