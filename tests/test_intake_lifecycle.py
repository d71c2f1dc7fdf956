"""A citizen follows a case and acts on it while the office and the ombudsman work it,
through the real services: answers, messages, feedback, appeal, withdrawal, and the 409s
when the case's state does not allow what the citizen asks."""

import pytest

from tests.system import complaint, submit, wait_until
from tests.test_intake import intake_rpc, stored_events

pytestmark = pytest.mark.e2e

OFFICE = "commune-120101"


def view(system, case) -> dict:
    response = system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                           case["citizen_token"])
    assert response.status_code == 200, response.text
    return response.json()


def view_in(system, case, status) -> dict:
    return wait_until(lambda: (v := view(system, case))["status"] == status and v,
                      what=f"citizen sees {status}")


def citizen(system, case, action, body=None):
    return system.call("POST", "intake", f"/v1/cases/{case['tracking_code']}/{action}",
                       case["citizen_token"], json=body if body is not None else {})


def office(system, case, action, body=None, role="staff", office_id=OFFICE):
    response = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/{action}",
                           system.principal(role, office_id), json=body or {})
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_a_case_from_question_to_appeal_to_findings_as_the_citizen_sees_it(system):
    case = submit(system, complaint(language="en", description="No water for three days."))
    routed = view_in(system, case, "routed")
    assert routed["office"]["id"] == OFFICE
    assert routed["deadlines"]["acknowledge_due"] and routed["deadlines"]["resolve_due"]
    assert routed["can"] == ["message", "withdraw"]
    assert [e["title"] for e in routed["timeline"]] == [
        "Your case was received", "Sent to the office that handles it"]

    early = citizen(system, case, "feedback", {"satisfied": True, "rating": 5})
    assert early.status_code == 409
    assert "resolved" in early.json()["errors"]["status"][0]

    office(system, case, "acknowledge")
    office(system, case, "notes", {"text": "internal: the pump operator is the chief's cousin"})
    office(system, case, "request-info", {"question": "Which village are you in?"})
    waiting = view_in(system, case, "waiting-for-citizen")
    assert waiting["question"] == "Which village are you in?"
    assert "answer" in waiting["can"]
    asked = waiting["timeline"][-1]
    assert (asked["event_type"], asked["detail"]) == ("InformationRequested",
                                                      "Which village are you in?")
    assert "cousin" not in str(waiting)  # internal notes never reach the citizen

    answer = citizen(system, case, "messages", {"text": "Phum Thmei, near the pagoda"})
    assert answer.status_code == 200
    assert answer.json() == {"tracking_code": case["tracking_code"], "status": "acknowledged",
                             "answers_request": True}
    answered = view_in(system, case, "acknowledged")
    assert answered["messages"][0]["text"] == "Phum Thmei, near the pagoda"
    assert answered["messages"][0]["answers_request"] is True
    extra = citizen(system, case, "messages", {"text": "It is still dry today."})
    assert extra.status_code == 200 and extra.json()["answers_request"] is False

    office(system, case, "resolve", {"resolution": "The pump was repaired on Monday."})
    resolved = view_in(system, case, "resolved")
    assert resolved["resolution"] == "The pump was repaired on Monday."
    assert "feedback" in resolved["can"]

    appeal = citizen(system, case, "feedback",
                     {"satisfied": False, "rating": 1, "comment": "Still no water."})
    assert appeal.status_code == 200 and appeal.json()["status"] == "escalated"
    again = citizen(system, case, "feedback", {"satisfied": True})
    assert again.status_code == 409
    assert stored_events(system, case["case_id"]) == [
        "CaseSubmitted", "InformationProvided", "InformationProvided", "FeedbackReceived",
        "CaseAppealed"]

    # The appeal itself says "escalated"; routing's escalation then names the ombudsman.
    escalated = wait_until(lambda: (v := view(system, case))["status"] == "escalated"
                           and "ombudsman" in v["office"]["id"] and v, what="at the ombudsman")
    ombudsman_office = escalated["office"]["id"]
    office(system, case, "findings", {"findings": "The repair was not done.",
                                      "recommendation": "Repair within a week."},
           role="ombudsman", office_id=ombudsman_office)
    office(system, case, "close", role="ombudsman", office_id=ombudsman_office)
    closed = view_in(system, case, "closed")
    assert (closed["findings"], closed["recommendation"]) == ("The repair was not done.",
                                                              "Repair within a week.")
    assert closed["can"] == []
    for action, body in (("messages", {"text": "thank you"}), ("withdraw", {}),
                         ("feedback", {"satisfied": True})):
        refused = citizen(system, case, action, body)
        assert refused.status_code == 409, (action, refused.text)
        assert refused.json()["errors"]["status"]

    with intake_rpc(system) as intake:
        file = intake.case_file(case["case_id"], "staff")
    assert [(m["text"], m["answers_request"]) for m in file["messages"]] == [
        ("Phum Thmei, near the pagoda", True), ("It is still dry today.", False)]
    assert file["feedback"][0]["comment"] == "Still no water."


def test_the_timeline_speaks_the_citizens_language(system):
    case = submit(system, complaint(language="km"))
    routed = view_in(system, case, "routed")
    assert [e["title"] for e in routed["timeline"]] == [
        "ករណីរបស់អ្នកត្រូវបានទទួល", "បានបញ្ជូនទៅការិយាល័យទទួលបន្ទុក"]
    assert routed["office"]["name_km"]


def test_a_withdrawn_case_takes_nothing_more(system):
    case = submit(system)
    routed = view_in(system, case, "routed")
    assert routed["deadlines"]["resolve_due"] is not None
    withdrawn = citizen(system, case, "withdraw", {"reason": "solved with my neighbours"})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    # Refused at once, before the withdrawal has come back through the broker.
    second = citizen(system, case, "withdraw")
    assert second.status_code == 409 and "withdrawn" in second.json()["errors"]["status"][0]
    message = citizen(system, case, "messages", {"text": "one more thing"})
    assert message.status_code == 409
    final = view_in(system, case, "withdrawn")
    assert final["timeline"][-1]["event_type"] == "CaseWithdrawn"
    assert final["deadlines"] == {"acknowledge_due": None, "resolve_due": None}
    assert stored_events(system, case["case_id"]) == ["CaseSubmitted", "CaseWithdrawn"]


def test_only_the_cases_own_token_acts_on_it(system):
    case, other = submit(system), submit(system)
    for action, body in (("messages", {"text": "hello"}), ("withdraw", {}),
                         ("feedback", {"satisfied": True})):
        path = f"/v1/cases/{case['tracking_code']}/{action}"
        assert system.call("POST", "intake", path, json=body).status_code == 401
        assert system.call("POST", "intake", path, other["citizen_token"],
                           json=body).status_code == 403
        assert system.call("POST", "intake", path, system.principal("staff", OFFICE),
                           json=body).status_code == 403
        unknown = system.call("POST", "intake", f"/v1/cases/22222-22222/{action}",
                              case["citizen_token"], json=body)
        assert unknown.status_code == 404
    bad = citizen(system, case, "messages", {"text": ""})
    assert bad.status_code == 400 and "text" in bad.json()["errors"]
    assert stored_events(system, case["case_id"]) == ["CaseSubmitted"]
