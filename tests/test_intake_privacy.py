"""Personal data through the real services: sealed at rest with a key per case, nowhere
in plain text (tables, the exchange, logs), handed out over RPC only with consent, and
crypto-shredded by `ourvoice privacy erase`."""

import json
import subprocess
from contextlib import contextmanager

import pytest
import requests
from kombu import Queue

from services.intake.application import Intake
from shared.config import Postgres
from shared.store import open_store
from shared.topology import EVENTS
from tests.system import ROOT, complaint, submit, wait_until
from tests.test_intake import intake_rpc, stored_events

pytestmark = pytest.mark.e2e


@contextmanager
def probe(system):
    """Every message published on the events exchange from now on."""
    with system.broker() as connection:
        queue = Queue("probe.intake-privacy", exchange=EVENTS, routing_key="#", durable=False,
                      auto_delete=False)
        bound = queue(connection.default_channel)
        bound.declare()
        bodies: list[bytes] = []

        def drain() -> list[bytes]:
            while (message := bound.get(no_ack=True)) is not None:
                bodies.append(message.body if isinstance(message.body, bytes)
                              else message.body.encode())
            return bodies

        try:
            yield drain
        finally:
            bound.delete()


def plain_text_in_tables(system, needles: list[str]) -> list[str]:
    """Every (table, needle) where a needle appears in any column, bytea included."""
    found = []
    tables = [r["tablename"] for r in system.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert "intake_events" in tables and "routing_events" in tables
    for table in tables:
        for row in system.query(f'SELECT * FROM "{table}"'):
            for value in row.values():
                text = bytes(value).decode("utf-8", "replace") \
                    if isinstance(value, bytes | memoryview) else str(value)
                found += [f"{table}: {n}" for n in needles if n in text]
    return found


def ourvoice(system, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), *args], env=system.env,
                          capture_output=True, text=True, timeout=60)


def identified(phone="012 987 654", **extra) -> dict:
    return complaint(complainant={"anonymous": False, "name": "Chan Sopheap", "phone": phone,
                                  "email": "sopheap.chan@example.org", "gender": "female",
                                  **extra})


def test_a_submitted_phone_number_is_nowhere_in_plain_text(system):
    with probe(system) as published:
        app = submit(system, identified())
        form = {"api_key": "open311-development-key", "service_code": "land",
                "address_id": "120101", "description": "boundary dispute", "first_name": "Chan",
                "last_name": "Sopheap", "phone": "+855 16 555 777",
                "email": "sopheap.chan@example.org"}
        open311 = requests.post(system.url("intake", "/open311/v2/requests.json"), data=form,
                                timeout=10)
        assert open311.status_code == 201, open311.text
        message = system.call("POST", "intake", f"/v1/cases/{app['tracking_code']}/messages",
                              app["citizen_token"], json={"text": "any news?"})
        assert message.status_code == 200
        wait_until(system.settled, what="every event delivered")
        bodies = wait_until(lambda: len(published()) >= 5 and published(),
                            what="events on the exchange")

    with intake_rpc(system) as intake:
        # The contact is kept (sealed): the office's notifications can still reach her.
        assert intake.contact_for(app["case_id"]) == {
            "name": "Chan Sopheap", "phone": "+85512987654",
            "email": "sopheap.chan@example.org", "language": "km"}
        assert intake.contact_for(str(app["case_id"]))["phone"] == "+85512987654"

    needles = ["12987654", "987 654", "16555777", "16 555 777", "Sopheap", "sopheap.chan"]
    assert plain_text_in_tables(system, needles) == []
    # The search does see what is stored in plain text, in the event store too.
    assert "intake_events: boundary dispute" in plain_text_in_tables(system, ["boundary dispute"])
    for body in bodies:
        envelope = json.loads(body)
        assert envelope["event_type"]
        assert not [n for n in needles if n in body.decode()], envelope
        assert "female" not in body.decode()
    for log in system.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not [n for n in needles if n in text], log.name


def test_contact_is_handed_out_only_with_consent(system):
    consenting = submit(system, identified(phone="011 222 333"))
    declined = submit(system, identified(phone="011 222 334", consent_to_contact=False))
    email_only = submit(system, complaint(complainant={"anonymous": False,
                                                       "email": "dara@example.org"}))
    anonymous = submit(system)
    with intake_rpc(system) as intake:
        assert intake.contact_for(consenting["case_id"])["phone"] == "+85511222333"
        assert intake.contact_for(declined["case_id"]) is None
        assert intake.contact_for(email_only["case_id"]) == {
            "name": None, "phone": None, "email": "dara@example.org", "language": "km"}
        assert intake.contact_for(anonymous["case_id"]) is None
        assert intake.contact_for("not-a-case-id") is None
        file = intake.case_file(consenting["case_id"], "staff")
    assert set(file) == {
        "case_id", "tracking_code", "type", "category", "language", "sensitive",
        "description", "description_hidden", "rating", "channel", "anonymous",
        "personal_data", "submitted_at", "messages", "feedback", "attachments", "media_urls"}
    assert file["personal_data"] == "kept"
    assert not [v for v in ("Sopheap", "222333", "example.org", "female") if v in str(file)]


def test_erasure_destroys_the_key_and_leaves_a_history_that_replays(system):
    case = submit(system, identified(phone="092 111 222"),
                  **{"Idempotency-Key": "erase-me-later"})
    wait_until(lambda: system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                                   case["citizen_token"]).json()["status"] == "routed",
               what="routed")
    with probe(system) as published:
        done = ourvoice(system, "privacy", "erase", case["tracking_code"].lower())
        assert done.returncode == 0, done.stderr
        assert "erased" in done.stdout
        erased = wait_until(lambda: [json.loads(b) for b in published()
                                     if b"PersonalDataErased" in b], what="erasure published")
    assert len(erased) == 1 and erased[0]["data"] == {}
    assert erased[0]["office_id"] == "commune-120101"

    key = system.query("SELECT wrapped_key, erased_at FROM intake_case_keys WHERE case_id = %s",
                       (case["case_id"],))
    assert key[0]["wrapped_key"] is None and key[0]["erased_at"] is not None
    assert stored_events(system, case["case_id"]) == ["CaseSubmitted", "PersonalDataErased"]
    with intake_rpc(system) as intake:
        assert intake.contact_for(case["case_id"]) is None
        assert intake.case_file(case["case_id"], "staff")["personal_data"] == "erased"

    # The history replays: the case reads as erased, its sealed contact is still there
    # and no key in the database opens it any more.
    store = open_store(Intake, Postgres(dbname=system.dbname, host="127.0.0.1", port=5432,
                                        user="postgres", password=""))
    try:
        replayed = store.repository.get(case["case_id"])
    finally:
        store.close()
    assert replayed.personal_data == "erased" and replayed.sealed_contact
    assert replayed.tracking_code == case["tracking_code"]

    # The case view records the erasure; the citizen token no longer opens it.
    wait_until(lambda: system.scalar(
        "SELECT event_type FROM intake_timeline WHERE case_id = %s "
        "ORDER BY occurred_at DESC LIMIT 1", (case["case_id"],)) == "PersonalDataErased",
        what="the case view records the erasure")
    assert system.scalar("SELECT status FROM intake_case_view WHERE case_id = %s",
                         (case["case_id"],)) == "routed"
    assert system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                       case["citizen_token"]).status_code == 401

    again = ourvoice(system, "privacy", "erase", case["tracking_code"])
    assert again.returncode == 0
    assert stored_events(system, case["case_id"]) == ["CaseSubmitted", "PersonalDataErased"]
    # A late retry of the original submission gets the same case and no new key.
    retry = requests.post(system.url("intake", "/v1/cases"), json=identified(phone="092 111 222"),
                          headers={"Idempotency-Key": "erase-me-later"}, timeout=10)
    assert retry.status_code == 201 and retry.json()["case_id"] == case["case_id"]
    assert system.scalar("SELECT wrapped_key FROM intake_case_keys WHERE case_id = %s",
                         (case["case_id"],)) is None

    missing = ourvoice(system, "privacy", "erase", "22222-22222")
    assert missing.returncode == 1 and "no case" in missing.stderr
    anonymous = submit(system)
    nothing = ourvoice(system, "privacy", "erase", anonymous["tracking_code"])
    assert nothing.returncode == 0 and "nothing to erase" in nothing.stdout
    assert stored_events(system, anonymous["case_id"]) == ["CaseSubmitted"]


def test_gender_counts_for_reporting_filter_by_area_office_and_type(system):
    for commune, gender in (("020101", "female"), ("020101", "female"), ("020101", "male"),
                            ("020201", "other")):
        submit(system, complaint(location={"commune": commune},
                                 complainant={"anonymous": True, "gender": gender}))
    with intake_rpc(system) as intake:
        def counted():
            rows = intake.gender_counts({"province": "02", "office_id": "commune-020101"})
            return rows if sum(r["cases"] for r in rows) == 3 else None

        rows = wait_until(counted, what="cases routed and counted")
        assert {r["gender"]: r["cases"] for r in rows} == {"female": 2, "male": 1}
        assert {r["commune"] for r in rows} == {"020101"}
        assert [r["gender"] for r in intake.gender_counts({"district": "0202"})] == ["other"]
        assert intake.gender_counts({"province": "02", "type": "support"}) == []
