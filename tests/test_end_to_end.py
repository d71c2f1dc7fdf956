"""One complaint through the four services, the real broker and the real database."""

import pytest
import requests

from shared.config import SERVICES
from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.e2e


def office_queue(system, office_id):
    token = system.principal("staff", office_id)
    response = requests.get(system.url("routing", f"/v1/offices/{office_id}/queue"), timeout=10,
                            params={"limit": 500},
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()["cases"]


def test_a_complaint_reaches_its_office_queue_the_report_and_the_citizen(system):
    submitted = submit(system, complaint(category="construction-permits"))
    assert submitted["status"] == "submitted"

    queue = wait_until(lambda: office_queue(system, "owso-1201"), what="case in OWSO queue")
    assert [c["tracking_code"] for c in queue] == [submitted["tracking_code"]]
    assert queue[0]["status"] == "routed"

    def counted():  # the whole figures: the public sees ended months, one case held back
        summary = system.call("GET", "reporting", "/v1/reports/summary",
                              system.principal("auditor")).json()
        return summary if summary["total"] == 1 else None

    summary = wait_until(counted, what="case counted in the report")
    assert summary["by_category"] == {"construction-permits": 1}

    def routed_view():
        response = requests.get(
            system.url("intake", f"/v1/cases/{submitted['tracking_code']}"),
            headers={"Authorization": f"Bearer {submitted['citizen_token']}"}, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        return body if body["status"] == "routed" else None

    view = wait_until(routed_view, what="citizen sees the office")
    assert view["office"]["id"] == "owso-1201"
    assert view["office"]["name_en"] == "Chamkar Mon One Window Service Office"
    assert [e["event_type"] for e in view["timeline"]] == ["CaseSubmitted", "CaseRouted"]

    # Notifications heard of it too (an anonymous citizen and an office with no address
    # on record get no message; tests/test_notifications.py covers who is told what).
    wait_until(lambda: system.scalar("SELECT count(*) FROM notifications_tracking"),
               what="notifications consumed the events")


def test_every_service_answers_health_and_openapi(system):
    for service in SERVICES:
        health = requests.get(system.url(service, "/health"), timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok", "refused_events": 0}
        spec = requests.get(system.url(service, "/openapi.json"), timeout=10).json()
        assert spec["openapi"].startswith("3.")
        assert "/health" in spec["paths"]
    intake_spec = requests.get(system.url("intake", "/openapi.json"), timeout=10).json()
    body = intake_spec["paths"]["/v1/cases"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/SubmitCase")


def test_bad_input_is_a_400_with_field_errors_and_records_nothing(system):
    before = system.scalar("SELECT count(*) FROM intake_events")
    response = requests.post(system.url("intake", "/v1/cases"), timeout=10, json=complaint(
        type="grievance", location={"commune": "999999"}, extra="x"))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"type", "location.commune", "extra"}
    not_json = requests.post(system.url("intake", "/v1/cases"), data=b"\xff{", timeout=10)
    assert not_json.status_code == 400 and "errors" in not_json.json()
    assert system.scalar("SELECT count(*) FROM intake_events") == before


def test_a_retry_with_the_same_idempotency_key_returns_the_same_case(system):
    body = complaint(description="retried over a flaky network")
    first = submit(system, body, **{"Idempotency-Key": "app-7f3a"})
    again = submit(system, body, **{"Idempotency-Key": "app-7f3a"})
    assert again == first
    assert system.scalar(
        "SELECT count(*) FROM intake_events WHERE originator_id = %s", (first["case_id"],)) == 1
    other = requests.post(system.url("intake", "/v1/cases"), timeout=10,
                          json=complaint(description="something else"),
                          headers={"Idempotency-Key": "app-7f3a"})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["errors"]


def test_the_citizen_view_needs_the_citizen_token(system):
    submitted = submit(system)
    url = system.url("intake", f"/v1/cases/{submitted['tracking_code']}")
    assert requests.get(url, timeout=10).status_code == 401
    other = submit(system)
    wrong = requests.get(url, headers={"Authorization": f"Bearer {other['citizen_token']}"},
                         timeout=10)
    assert wrong.status_code == 403
    missing = requests.get(system.url("intake", "/v1/cases/22222-22222"), timeout=10,
                           headers={"Authorization": f"Bearer {other['citizen_token']}"})
    assert missing.status_code == 404
    forged = other["citizen_token"][:-4] + "AAAA"
    bad = requests.get(url, headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert bad.status_code == 401 and "Authorization" in bad.json()["errors"]


def test_the_office_queue_is_for_that_office_auditors_and_admins(system):
    url = system.url("routing", "/v1/offices/owso-1201/queue")

    def status(token):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(url, headers=headers, timeout=10).status_code

    assert status(None) == 401
    assert status("p1.not-a-real-token") == 401
    assert status(system.principal("staff", "owso-1201")) == 200
    assert status(system.principal("ombudsman", "owso-1201")) == 200
    assert status(system.principal("auditor")) == 200
    assert status(system.principal("admin")) == 200
    assert status(system.principal("staff", "owso-1202")) == 403
    assert status(submit(system)["citizen_token"]) == 403


def test_unknown_paths_get_a_json_404(system):
    response = requests.get(system.url("routing", "/v1/nothing/here"), timeout=10)
    assert response.status_code == 404
    assert response.json()["errors"]["_"] == ["no such resource: /v1/nothing/here"]
