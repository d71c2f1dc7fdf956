"""Open311 GeoReport v2 on the same cases, through the real services."""

import pytest
import requests

from shared.tracking import case_id_for
from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.e2e

KEY = "open311-live-key"
# The first may also read descriptions; the second only submits.
SYSTEM_ENV = {"OURVOICE_OPEN311_KEYS": f"{KEY}:read-descriptions, another-client-key"}


def get(system, path, **params):
    response = requests.get(system.url("intake", f"/open311/v2/{path}"), params=params,
                            timeout=10)
    return response


def post(system, **form):
    return requests.post(system.url("intake", "/open311/v2/requests.json"), data=form,
                         timeout=10)


def new_request(**overrides) -> dict:
    return {"api_key": KEY, "service_code": "water-supply", "address_id": "120101",
            "description": "The tap on street 310 has been dry since Friday.",
            "lat": "11.55", "long": "104.92", **overrides}


def test_services_are_the_categories(system):
    services = get(system, "services.json")
    assert services.status_code == 200
    codes = {s["service_code"]: s for s in services.json()}
    assert codes["water-supply"]["service_name"] == "Clean water supply"
    assert codes["water-supply"]["metadata"] is True and codes["water-supply"]["type"] == "realtime"
    definition = get(system, "services/gender-based-violence.json").json()
    attributes = {a["code"]: a for a in definition["attributes"]}
    assert [v["key"] for v in attributes["case_type"]["values"]] == [
        "complaint", "support", "information"]
    assert get(system, "services/no-such-service.json").status_code == 404
    assert get(system, "services.xml").status_code == 404  # JSON only


def test_posting_a_request_needs_a_known_api_key_and_a_valid_form(system):
    assert post(system, **{**new_request(), "api_key": "guessed"}).status_code == 403
    assert post(system, **new_request(api_key="open311-development-key")).status_code == 403
    missing = post(system, service_code="water-supply", address_id="120101")
    assert missing.status_code == 400 and "api_key" in missing.json()["errors"]
    as_json = requests.post(system.url("intake", "/open311/v2/requests.json"),
                            json=new_request(), timeout=10)
    assert as_json.status_code == 400
    for form, field in [
        (new_request(address_id="999999"), "address_id"),
        (new_request(address_id="Phnom Penh"), "address_id"),
        (new_request(service_code="potholes"), "service_code"),
        (new_request(phone="555-0100"), "phone"),
        (new_request(**{"attribute[case_type]": "evaluation"}), "attribute[rating]"),
        (new_request(**{"attribute[rating]": "4"}), "attribute[rating]"),
        (new_request(lat="north"), "lat"),
        (new_request(colour="red"), "colour"),
    ]:
        response = post(system, **form)
        assert response.status_code == 400, (form, response.text)
        assert field in response.json()["errors"], (form, response.json())


def test_a_request_posted_form_encoded_is_a_case_followed_like_any_other(system):
    posted = post(system, **new_request(first_name="Dara", phone="012 555 666",
                                        **{"attribute[gender]": "male",
                                           "attribute[language]": "en"}))
    assert posted.status_code == 201, posted.text
    (receipt,) = posted.json()
    code = receipt["service_request_id"]
    assert receipt["service_notice"] and receipt["account_id"] is None
    mine = requests.get(system.url("intake", f"/v1/cases/{code}"), timeout=10,
                        headers={"Authorization": f"Bearer {receipt['citizen_token']}"})
    assert mine.status_code == 200 and mine.json()["language"] == "en"

    def routed():
        (one,) = get(system, f"requests/{code}.json").json()
        return one if one["agency_responsible"] else None

    request = wait_until(routed, what="the request shows its office")
    assert request["status"] == "open"
    assert request["agency_responsible"] == "Tonle Basak Commune Office"
    assert request["expected_datetime"] and request["requested_datetime"]
    assert request["address_id"] == "120101"
    assert request["address"] == "Tonle Basak, Chamkar Mon, Phnom Penh"
    assert request["description"] is None, "descriptions only for a key granted them"
    (granted,) = get(system, f"requests/{code}.json", api_key=KEY).json()
    assert granted["description"] == "The tap on street 310 has been dry since Friday."
    assert "Dara" not in str(request) and "555" not in str(request) and "male" not in str(request)
    assert get(system, "requests/22222-22222.json").status_code == 404

    # Resolved is closed for Open311, with the reason in status_notes.
    case_id = case_id_for(code)
    staff = system.principal("staff", "commune-120101")
    for action, body in (("acknowledge", {}), ("resolve", {"resolution": "Tap repaired"})):
        done = system.call("POST", "routing", f"/v1/cases/{case_id}/{action}", staff, json=body)
        assert done.status_code == 200, done.text
    closed = wait_until(lambda: (r := get(system, f"requests/{code}.json").json()[0])
                        ["status"] == "closed" and r, what="request closed")
    assert "resolved" in closed["status_notes"].lower()


def test_listing_requests_filters_and_never_leaks(system):
    land = submit(system, complaint(category="land", description="Land title delayed",
                                    complainant={"anonymous": False, "phone": "012 444 555",
                                                 "gender": "female"}))
    secret = submit(system, complaint(category="gender-based-violence",
                                      description="ការបៀតបៀនផ្លូវភេទ"))
    withdrawn = submit(system, complaint(category="schools", description="No teacher"))
    assert system.call("POST", "intake", f"/v1/cases/{withdrawn['tracking_code']}/withdraw",
                       withdrawn["citizen_token"], json={}).status_code == 200

    def listed(**params):
        response = get(system, "requests.json", api_key=KEY, **params)
        assert response.status_code == 200, response.text
        return {r["service_request_id"]: r for r in response.json()}

    everything = wait_until(lambda: (found := listed()) and {
        land["tracking_code"], withdrawn["tracking_code"]} <= set(found)
        and found, what="listed")
    assert secret["tracking_code"] not in everything, "a sensitive case is never listed"
    text = str(everything)
    assert "ការបៀតបៀន" not in text and "444" not in text and "female" not in text
    assert everything[land["tracking_code"]]["description"] == "Land title delayed"

    assert set(listed(service_code="land")) == {land["tracking_code"]}
    closed = wait_until(lambda: (found := listed(status="closed"))
                        and withdrawn["tracking_code"] in found and found, what="withdrawal")
    assert land["tracking_code"] not in closed
    assert "Withdrawn" in closed[withdrawn["tracking_code"]]["status_notes"]
    assert land["tracking_code"] in listed(status="open")
    both = f"{land['tracking_code']},{secret['tracking_code'].lower()}"
    assert set(listed(service_request_id=both)) == {land["tracking_code"]}
    assert listed(start_date="2999-01-01T00:00:00Z") == {}
    assert listed(end_date="2000-01-01T00:00:00+07:00") == {}
    for params, field in [({"status": "pending"}, "status"), ({"start_date": "yesterday"},
                          "start_date"), ({"sort": "newest"}, "sort")]:
        refused = get(system, "requests.json", **params)
        assert refused.status_code == 400 and field in refused.json()["errors"]
