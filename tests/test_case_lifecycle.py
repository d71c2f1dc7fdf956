"""The whole road of one complaint, through intake and routing as the citizen, the office
and the ombudsman each see it."""

import pytest

from tests.system import citizen_view, complaint, submit, wait_until

pytestmark = pytest.mark.e2e


def queued(system, office_id, tracking_code):
    response = system.call("GET", "routing", f"/v1/offices/{office_id}/queue",
                           system.principal("auditor"), params={"limit": 500})
    assert response.status_code == 200, response.text
    return next((c for c in response.json()["cases"] if c["tracking_code"] == tracking_code),
                None)




def status_is(system, case, status):
    return lambda: citizen_view(system, case)["status"] == status


def test_from_submission_through_appeal_to_the_ombudsman_closing_it(system):
    staff = system.principal("staff", "commune-120101")
    case = submit(system, complaint())
    code, path = case["tracking_code"], f"/v1/cases/{case['case_id']}"
    wait_until(lambda: queued(system, "commune-120101", code), what="routed")

    assert system.call("POST", "routing", path + "/acknowledge", staff).status_code == 200
    wait_until(status_is(system, case, "acknowledged"), what="citizen sees acknowledged")

    # The office asks; the clock stops until the citizen answers.
    asked = system.call("POST", "routing", path + "/request-info", staff,
                        json={"question": "តើផ្ទះលេខប៉ុន្មាន?"})
    assert asked.status_code == 200
    wait_until(status_is(system, case, "waiting-for-citizen"), what="citizen is asked")
    assert queued(system, "commune-120101", code)["resolve_due"] is None
    answered = system.call("POST", "intake", f"/v1/cases/{code}/messages",
                           case["citizen_token"], json={"text": "ផ្ទះលេខ ១២"})
    assert answered.status_code in (200, 201), answered.text
    entry = wait_until(lambda: (e := queued(system, "commune-120101", code))
                       and e["status"] == "acknowledged" and e, what="clock restarted")
    assert entry["resolve_due"] is not None

    assert system.call("POST", "routing", path + "/resolve", staff,
                       json={"resolution": "The pipe was repaired."}).status_code == 200
    wait_until(status_is(system, case, "resolved"), what="citizen sees resolved")
    assert queued(system, "commune-120101", code) is None

    # Not satisfied: an appeal, which routing takes to the District Ombudsman.
    feedback = system.call("POST", "intake", f"/v1/cases/{code}/feedback",
                           case["citizen_token"],
                           json={"satisfied": False, "rating": 1, "comment": "Still no water"})
    assert feedback.status_code in (200, 201), feedback.text
    wait_until(lambda: queued(system, "district-ombudsman-1201", code),
               what="appeal at the district ombudsman")

    token = system.principal("ombudsman", "district-ombudsman-1201")
    assert system.call("POST", "routing", path + "/close", token).status_code == 409
    assert system.call("POST", "routing", path + "/findings", staff,
                       json={"findings": "x", "recommendation": "y"}).status_code == 403
    found = system.call("POST", "routing", path + "/findings", token,
                        json={"findings": "The repair was partial.",
                              "recommendation": "Replace the main pipe within a week."})
    assert found.status_code == 200
    assert system.call("POST", "routing", path + "/close", token).status_code == 200
    wait_until(status_is(system, case, "closed"), what="citizen sees closed")
    assert queued(system, "district-ombudsman-1201", code) is None

    timeline = [e["event_type"] for e in citizen_view(system, case)["timeline"]]
    for expected in ("CaseSubmitted", "CaseRouted", "CaseAcknowledged", "InformationRequested",
                     "InformationProvided", "CaseResolved", "FeedbackReceived", "CaseAppealed",
                     "CaseEscalated", "OmbudsmanFindingsRecorded", "CaseClosed"):
        assert expected in timeline, expected


def test_satisfied_feedback_closes_the_case(system):
    staff = system.principal("staff", "commune-120101")
    case = submit(system, complaint())
    path = f"/v1/cases/{case['case_id']}"
    wait_until(lambda: queued(system, "commune-120101", case["tracking_code"]), what="routed")
    system.call("POST", "routing", path + "/acknowledge", staff)
    system.call("POST", "routing", path + "/resolve", staff, json={"resolution": "Fixed."})
    wait_until(status_is(system, case, "resolved"), what="resolved")
    response = system.call("POST", "intake", f"/v1/cases/{case['tracking_code']}/feedback",
                           case["citizen_token"], json={"satisfied": True, "rating": 5})
    assert response.status_code in (200, 201), response.text
    wait_until(status_is(system, case, "closed"), what="closed after satisfied feedback")


def test_a_withdrawn_case_leaves_the_queue(system):
    case = submit(system, complaint())
    wait_until(lambda: queued(system, "commune-120101", case["tracking_code"]), what="routed")
    response = system.call("POST", "intake", f"/v1/cases/{case['tracking_code']}/withdraw",
                           case["citizen_token"])
    assert response.status_code in (200, 201), response.text
    wait_until(lambda: queued(system, "commune-120101", case["tracking_code"]) is None,
               what="withdrawn case gone from the queue")
