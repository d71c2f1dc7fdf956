"""Intake through the real HTTP server: case types, categories, geocodes, validation,
idempotent retries, tracking codes and tokens, anonymity, gender, sensitive cases and the
submission limit."""

import hashlib
import json
import re
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests

from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.e2e

CODE = re.compile(r"^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{5}-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{5}$")


# -- helpers the other intake modules use too --------------------------------------------
# Who intake answers for each method (the broker tells intake who asks).
RPC_CALLERS = {"case_file": "routing", "contacts_for": "notifications",
               "gender_counts": "reporting"}


class IntakeRpc:
    def __init__(self, system):
        self.system = system

    def __getattr__(self, method):
        return lambda *args: self.system.rpc(RPC_CALLERS[method], "intake", method, *args)

    def contact_for(self, case_id):
        """One citizen's contact, asked for as notifications asks for many at once."""
        return self.contacts_for([case_id])[str(case_id)]


@contextmanager
def intake_rpc(system):
    """Intake's RPC methods, each called over the system's broker as the service that
    needs it does, as its broker user."""
    yield IntakeRpc(system)


def post_case(system, body, **headers) -> requests.Response:
    return requests.post(system.url("intake", "/v1/cases"), json=body, headers=headers,
                         timeout=30)


def stored_events(system, case_id) -> list[str]:
    return [r["topic"].rsplit(".", 1)[-1] for r in system.query(
        "SELECT topic FROM intake_events WHERE originator_id = %s ORDER BY originator_version",
        (case_id,))]


def event_count(system) -> int:
    return system.scalar("SELECT count(*) FROM intake_events")


# -- categories ----------------------------------------------------------------------------
def test_categories_fit_cambodias_sub_national_services(system):
    response = requests.get(system.url("intake", "/v1/categories"), timeout=10)
    assert response.status_code == 200
    found = {c["code"]: c for c in response.json()}
    for code in ("civil-registration", "construction-permits", "business-licences", "land",
                 "water-supply", "waste-collection", "local-roads", "health-centres", "schools",
                 "social-protection", "conduct-of-officials", "gender-based-violence",
                 "abuse-by-official"):
        assert code in found, code
    for category in found.values():
        assert category["level"] in ("commune", "district", "province")
        assert any("\u1780" <= ch <= "\u17ff" for ch in category["name_km"]), category
        assert category["name_en"]
    assert found["civil-registration"]["level"] == "commune"
    assert found["construction-permits"]["level"] == "district"
    assert found["gender-based-violence"]["sensitive"] is True
    assert "evaluation" not in found["gender-based-violence"]["case_types"]
    assert found["water-supply"]["sensitive"] is False


# -- case types ----------------------------------------------------------------------------
def test_each_case_type_takes_the_fields_it_needs_and_no_more(system):
    for case_type in ("complaint", "support", "information"):
        assert post_case(system, complaint(type=case_type)).status_code == 201
    evaluation = {"type": "evaluation", "category": "civil-registration", "rating": 4,
                  "location": {"commune": "120101"}, "language": "en",
                  "complainant": {"anonymous": True}}
    rated = post_case(system, evaluation)
    assert rated.status_code == 201, rated.text
    commented = post_case(system, {**evaluation, "rating": 2, "description": "slow, but polite"})
    assert commented.status_code == 201

    before = event_count(system)
    cases = [
        ({**evaluation, "rating": None}, "rating"),
        ({k: v for k, v in evaluation.items() if k != "rating"}, "rating"),
        ({**evaluation, "rating": 6}, "rating"),
        ({**evaluation, "rating": "4"}, "rating"),
        (complaint(rating=3), "rating"),
        ({k: v for k, v in complaint().items() if k != "description"}, "description"),
        (complaint(category="gender-based-violence", type="evaluation", rating=1), "type"),
        (complaint(category="no-such-service"), "category"),
    ]
    for body, field in cases:
        response = post_case(system, body)
        assert response.status_code == 400, (body, response.text)
        assert field in response.json()["errors"], (body, response.text)
    assert event_count(system) == before

    with intake_rpc(system) as intake:
        file = intake.case_file(rated.json()["case_id"], "staff")
        assert (file["type"], file["rating"], file["description"]) == ("evaluation", 4, "")
        assert intake.case_file(commented.json()["case_id"], "staff")["description"] == \
            "slow, but polite"


# -- places --------------------------------------------------------------------------------
def test_a_location_must_be_a_real_commune_and_consistent(system):
    ok = post_case(system, complaint(location={"province": "12", "district": "1201",
                                               "commune": "120101"}))
    assert ok.status_code == 201, ok.text
    before = event_count(system)
    for location, field in [
        ({"commune": "999999"}, "location.commune"),
        ({"commune": "12010"}, "location.commune"),
        ({"commune": 120101}, "location.commune"),
        ({}, "location.commune"),
        ({"commune": "120101", "district": "1202"}, "location.district"),
        ({"commune": "120101", "province": "17"}, "location.province"),
        ({"commune": "120101", "district": "9999"}, "location.district"),
        ({"commune": "120101", "village": "12010101"}, "location.village"),
    ]:
        response = post_case(system, complaint(location=location))
        assert response.status_code == 400, (location, response.text)
        assert field in response.json()["errors"], (location, response.json())
    assert event_count(system) == before


# -- validation ----------------------------------------------------------------------------
def test_invalid_payloads_are_400s_with_field_errors_and_nothing_is_recorded(system):
    before = event_count(system)
    url = system.url("intake", "/v1/cases")
    for body, field in [
        (complaint(description="ក" * 4001), "description"),
        (complaint(description=""), "description"),
        (complaint(description="bad \u0000 byte"), "description"),
        (complaint(language="fr"), "language"),
        (complaint(complainant={"anonymous": "yes"}), "complainant.anonymous"),
        (complaint(complainant={"anonymous": True, "age": 19}), "complainant.age"),
        (complaint(complainant={"anonymous": True, "gender": "f"}), "complainant.gender"),
        (complaint(complainant={"anonymous": False, "phone": "+1 555 0100"}), "complainant.phone"),
        (complaint(complainant={"anonymous": False, "email": "not-an-email"}), "complainant.email"),
        (complaint(complainant={"anonymous": False, "name": "x" * 201}), "complainant.name"),
        (complaint(channel="sms"), "channel"),
    ]:
        response = requests.post(url, json=body, timeout=10)
        assert response.status_code == 400, (field, response.text)
        assert field in response.json()["errors"], (field, response.json())
        assert all(isinstance(m, list) and m for m in response.json()["errors"].values())
    lone_surrogate = json.dumps(complaint(description="\ud800")).encode()
    for raw in (b"[1, 2]", b"\"text\"", b"{\"type\": ", lone_surrogate):
        response = requests.post(url, data=raw, timeout=10,
                                 headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and "errors" in response.json(), raw
    long_key = requests.post(url, json=complaint(), headers={"Idempotency-Key": "k" * 201},
                             timeout=10)
    assert long_key.status_code == 400 and "Idempotency-Key" in long_key.json()["errors"]
    assert event_count(system) == before
    longest = post_case(system, complaint(description="ក" * 4000))
    assert longest.status_code == 201


def test_khmer_text_is_stored_exactly_in_one_normal_form(system):
    khmer = "ផ្លូវនៅភូមិខ្ញុំខូចខាតធ្ងន់ធ្ងរ ក្មេងៗមិនអាចទៅសាលាបានទេ។"
    decomposed = "Cafe\u0301"  # e + combining acute, as some keyboards send it
    submitted = submit(system, complaint(description=f"{khmer}\n{decomposed}",
                                         complainant={"anonymous": False, "name": "ស\u17bb\u1781",
                                                      "phone": "012 345 678"}))
    with intake_rpc(system) as intake:
        stored = intake.case_file(submitted["case_id"], "staff")["description"]
        contact = intake.contacts_for([submitted["case_id"]])[submitted["case_id"]]
    assert stored == unicodedata.normalize("NFC", f"{khmer}\n{decomposed}")
    assert stored.startswith(khmer)  # Khmer typed in normal form is kept as it was
    assert stored.endswith("Caf\u00e9")
    assert contact["name"] == unicodedata.normalize("NFC", "ស\u17bb\u1781")


# -- retries -------------------------------------------------------------------------------
def test_retries_with_one_idempotency_key_racing_each_other_record_one_case(system):
    body = complaint(description="sent five times over a bad connection",
                     complainant={"anonymous": False, "phone": "097 765 4321",
                                  "gender": "male"})
    start = threading.Barrier(6)

    def attempt(_):
        start.wait()
        return post_case(system, body, **{"Idempotency-Key": "phone-42-attempt"})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(attempt, range(6)))
    assert [a.status_code for a in answers] == [201] * 6
    first = answers[0].json()
    assert all(a.json() == first for a in answers)
    assert stored_events(system, first["case_id"]) == ["CaseSubmitted"]
    assert system.scalar("SELECT count(*) FROM intake_case_keys WHERE case_id = %s",
                         (first["case_id"],)) == 1
    with intake_rpc(system) as intake:
        assert intake.contact_for(first["case_id"])["phone"] == "+855977654321"
    later = post_case(system, body, **{"Idempotency-Key": "phone-42-attempt"})
    assert later.status_code == 201 and later.json() == first
    other = post_case(system, complaint(), **{"Idempotency-Key": "phone-42-attempt"})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["errors"]
    assert stored_events(system, first["case_id"]) == ["CaseSubmitted"]


# -- codes and tokens ----------------------------------------------------------------------
def test_tracking_codes_read_out_well_and_only_a_hash_of_the_token_is_stored(system):
    submitted = [submit(system) for _ in range(5)]
    assert all(CODE.match(s["tracking_code"]) for s in submitted)
    assert len({s["tracking_code"] for s in submitted}) == 5
    one = submitted[0]
    token = one["citizen_token"]
    secret_part = token.rsplit(".", 1)[-1]
    states = [bytes(r["state"]).decode("utf-8", "replace") for r in system.query(
        "SELECT state FROM intake_events WHERE originator_id = %s", (one["case_id"],))]
    assert states and not any(token in s or secret_part in s for s in states)
    assert hashlib.sha256(token.encode()).hexdigest() in states[0]
    # Lower case and spaces, as typed after a phone call, find the same case.
    typed = one["tracking_code"].lower().replace("-", " ")
    view = requests.get(system.url("intake", f"/v1/cases/{typed}"), timeout=10,
                        headers={"Authorization": f"Bearer {token}"})
    assert view.status_code == 200 and view.json()["tracking_code"] == one["tracking_code"]
    other = requests.get(system.url("intake", f"/v1/cases/{submitted[1]['tracking_code']}"),
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert other.status_code == 403


# -- anonymity, gender, sensitive cases ----------------------------------------------------
def test_an_anonymous_submission_accepts_no_contact_data_at_all(system):
    before = event_count(system)
    for extra, field in [({"phone": "012345678"}, "complainant.phone"),
                         ({"name": "Dara"}, "complainant.name"),
                         ({"email": "dara@example.org"}, "complainant.email"),
                         ({"consent_to_contact": True}, "complainant.consent_to_contact")]:
        response = post_case(system, complaint(complainant={"anonymous": True, **extra}))
        assert response.status_code == 400 and field in response.json()["errors"], response.text
    nobody = post_case(system, complaint(complainant={"anonymous": False}))
    assert nobody.status_code == 400 and "complainant.anonymous" in nobody.json()["errors"]
    assert event_count(system) == before
    anonymous = submit(system, complaint(complainant={"anonymous": True}))
    assert system.scalar("SELECT count(*) FROM intake_case_keys WHERE case_id = %s",
                         (anonymous["case_id"],)) == 0
    with intake_rpc(system) as intake:
        assert intake.contact_for(anonymous["case_id"]) is None
        assert intake.case_file(anonymous["case_id"], "staff")["personal_data"] == "none"


def test_gender_is_optional_kept_for_reports_and_never_shown_to_the_office(system):
    no_gender = submit(system, complaint(complainant={"anonymous": True}))
    female = submit(system, complaint(category="land", location={"commune": "170101"},
                                      complainant={"anonymous": True, "gender": "female"}))
    with intake_rpc(system) as intake:
        for case in (no_gender, female):
            file = intake.case_file(case["case_id"], "staff")
            assert "gender" not in file and "female" not in str(file)
        counts = wait_until(lambda: intake.gender_counts({"province": "17", "category": "land"}),
                            what="gender counted")
    assert [(c["gender"], c["cases"], c["district"], c["type"]) for c in counts] == [
        ("female", 1, "1701", "complaint")]
    with intake_rpc(system) as intake:
        submitted_at = intake.case_file(female["case_id"], "staff")["submitted_at"]
    assert counts[0]["month"] == submitted_at[:7]


def test_a_gender_based_violence_complaint_is_read_only_by_its_ombudsman(system):
    words = "មន្ត្រីឃុំបានបៀតបៀនខ្ញុំ"
    case = submit(system, complaint(category="gender-based-violence", description=words,
                                    location={"commune": "170101"}))
    with intake_rpc(system) as intake:
        for role in ("staff", "auditor", "admin"):
            file = intake.case_file(case["case_id"], role)
            assert file["sensitive"] is True and file["description_hidden"] is True
            assert words not in str(file)
        assert intake.case_file(case["case_id"], "ombudsman")["description"] == words
    open311 = requests.get(system.url("intake", f"/open311/v2/requests/{case['tracking_code']}"
                                      ".json"), timeout=10)
    assert open311.status_code == 404 and words not in open311.text


# -- abuse ---------------------------------------------------------------------------------
def limited_intake(system, per_minute: int):
    """A second intake instance with a small submission limit (instances compete for
    work and each keeps its own limit)."""
    return system.another("intake", "intake-limited",
                          OURVOICE_SUBMISSIONS_PER_MINUTE=str(per_minute))


def test_too_many_submissions_from_one_client_get_429_with_retry_after(system):
    with limited_intake(system, per_minute=3) as url:
        codes = [requests.post(url + "/v1/cases", json=complaint(), timeout=10).status_code
                 for _ in range(3)]
        assert codes == [201, 201, 201]
        before = event_count(system)
        refused = requests.post(url + "/v1/cases", json=complaint(), timeout=10)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 20
        assert "too many submissions" in refused.json()["errors"]["_"][0]
        form = {"api_key": "open311-development-key", "service_code": "land",
                "address_id": "120101", "description": "through Open311"}
        assert requests.post(url + "/open311/v2/requests.json", data=form,
                             timeout=10).status_code == 429
        assert event_count(system) == before
        # Reading is not limited, and the other instance keeps its own count.
        assert requests.get(url + "/v1/categories", timeout=10).status_code == 200
        assert post_case(system, complaint()).status_code == 201

