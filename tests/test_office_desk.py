"""The office desk through the real services: staff record a case for a citizen who came
in, with the citizen's consent, at intake or from the console (through routing); the
citizen follows it with the token they take away; a case about the recording office's
own conduct goes to the office above it and never to that office; the reports count
the channel."""

import uuid

import pytest
import requests
from nameko.exceptions import RemoteError

from shared.config import SERVICES
from tests.system import citizen_view, complaint, wait_until

pytestmark = pytest.mark.e2e

COMMUNE = "060101"
OFFICE = "commune-060101"  # water supply is a commune office's service
ABOVE = "district-ombudsman-0601"
DESK = f"/v1/offices/{OFFICE}/desk/cases"
CONSENT = {"given": True, "how": "spoken"}


def desk_case(**overrides) -> dict:
    return {**complaint(location={"commune": COMMUNE},
                        complainant={"anonymous": False, "name": "សុខ ចាន់",
                                     "phone": "012 345 678", "gender": "female"}),
            "consent": CONSENT, **overrides}


def queue(system, office_id) -> list[str]:
    response = system.call("GET", "routing", f"/v1/offices/{office_id}/queue",
                           system.principal("auditor"), params={"limit": 500})
    assert response.status_code == 200, response.text
    return [c["tracking_code"] for c in response.json()["cases"]]


def intake_cases(system) -> int:
    return system.scalar("SELECT count(*) FROM intake_cases")


def record(system, service="intake", body=None, office=OFFICE, token=None, **headers):
    token = token or system.principal("staff", office)
    return requests.post(system.url(service, f"/v1/offices/{office}/desk/cases"),
                         json=body if body is not None else desk_case(), timeout=30,
                         headers={"Authorization": f"Bearer {token}", **headers})


def test_staff_record_a_case_with_consent_and_the_citizen_follows_it(system):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    answer = record(system, **key)
    assert answer.status_code == 201, answer.text
    case = answer.json()
    assert case["tracking_code"] and case["citizen_token"].startswith("c2.")
    assert record(system, **key).json() == case  # the desk's retry records nothing twice
    view = wait_until(lambda: (v := citizen_view(system, case))["status"] == "routed" and v,
                      what="the desk's case routed")
    assert view["office"]["id"] == OFFICE
    assert case["tracking_code"] in queue(system, OFFICE)
    read = system.call("GET", "routing", f"/v1/cases/{case['case_id']}",
                       system.principal("staff", OFFICE))
    assert read.status_code == 200 and read.json()["channel"] == "office-desk"


@pytest.mark.parametrize("consent, field", [
    (None, "consent"), ({"given": False, "how": "spoken"}, "consent.given"),
    ({"given": True}, "consent.how"), ({"given": True, "how": "nodded"}, "consent.how"),
])
def test_without_the_citizens_consent_nothing_is_recorded(system, consent, field):
    body = desk_case()
    if consent is None:
        del body["consent"]
    else:
        body["consent"] = consent
    before = intake_cases(system)
    for service in ("intake", "routing"):
        refused = record(system, service, body)
        assert refused.status_code == 400, refused.text
        assert field in refused.json()["errors"], refused.text
    assert intake_cases(system) == before


def test_only_the_staff_of_that_office_record_at_its_desk(system):
    before = intake_cases(system)
    for service in ("intake", "routing"):
        other = record(system, service, token=system.principal("staff", "commune-060102"))
        assert other.status_code == 403, other.text
        assert system.call("POST", service, DESK, json=desk_case()).status_code == 401
        auditor = record(system, service, token=system.principal("auditor"))
        assert auditor.status_code == 403
    assert intake_cases(system) == before


def test_the_console_records_through_routing_as_the_desk_does(system):
    answer = record(system, "routing", desk_case(description="through the console"))
    assert answer.status_code == 201, answer.text
    case = answer.json()
    wait_until(lambda: citizen_view(system, case)["status"] == "routed", what="routed")
    assert case["tracking_code"] in queue(system, OFFICE)


def test_a_case_about_the_recording_office_goes_above_it_never_to_it(system):
    about = record(system, body=desk_case(about_this_office=True,
                                          description="the commune clerk asked for money"))
    assert about.status_code == 201, about.text
    case = about.json()
    wait_until(lambda: case["tracking_code"] in queue(system, ABOVE),
               what="the case at the office above")
    assert case["tracking_code"] not in queue(system, OFFICE)
    assert citizen_view(system, case)["office"]["id"] == ABOVE
    # The recording office cannot open it either: it is not its case.
    read = system.call("GET", "routing", f"/v1/cases/{case['case_id']}",
                       system.principal("staff", OFFICE))
    assert read.status_code == 403


def test_a_case_about_the_recording_office_is_never_transferred_to_it(system):
    # A district office's service, recorded at a commune desk about that commune office:
    # it goes to the district office, which may not pass it to the commune office.
    body = desk_case(category="construction-permits", about_this_office=True)
    case = record(system, body=body).json()
    owso = "owso-0601"
    wait_until(lambda: case["tracking_code"] in queue(system, owso), what="at the OWSO")
    refused = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/transfer",
                          system.principal("staff", owso),
                          json={"office_id": OFFICE, "reason": "theirs"})
    assert refused.status_code == 409, refused.text
    assert "own conduct" in refused.json()["errors"]["status"][0]


def test_the_report_counts_the_cases_by_channel(system):
    wait_until(system.settled, what="every event reached reporting")
    found = wait_until(lambda: (r := system.call(
        "GET", "reporting", "/v1/reports/summary", system.principal("auditor"),
        params={"province": "06"}).json())["by_channel"].get("office-desk", 0) >= 4 and r,
        what="the desk's cases counted")
    assert set(found["by_channel"]) >= {"app", "open311", "sms", "telegram", "office-desk"}
    assert found["by_channel"]["office-desk"] == found["total"]


def test_the_desks_rpc_answers_routing_alone_and_checks_what_it_is_given(system):
    for caller in SERVICES:
        if caller != "routing":
            with pytest.raises(RemoteError, match="CallerRefused"):
                system.rpc(caller, "intake", "record_at_desk", OFFICE, desk_case(), None)
    refused = system.rpc("routing", "intake", "record_at_desk", OFFICE,
                         desk_case(consent={"given": False, "how": "spoken"}), None)
    assert refused["status"] == 400 and "consent.given" in refused["errors"]
    unknown = system.rpc("routing", "intake", "record_at_desk", "commune-999999",
                         desk_case(), None)
    assert unknown["status"] == 404
