"""Sensitive cases are the ombudsman's alone, through the real services and broker: a
gender-based-violence case, worked by the district ombudsman, appealed to the province's,
reaches none of the area's subscribers, webhooks or offices; the ombudsman's own
subscribers and webhook get its events without a word or its category; the citizen
still reads what the ombudsman asked. Open311 shows no sensitive case and no description
without a key granted them, and no webhook secret is kept or published in plain text."""

import json
import subprocess
import time
import uuid
from contextlib import ExitStack, contextmanager

import pytest
import requests
from kombu import Queue

from shared.topology import EVENTS
from tests.receivers import HttpReceiver, Mailbox, signed_correctly
from tests.system import ROOT, citizen_view, complaint, submit, wait_until

pytestmark = pytest.mark.e2e

MAILBOX = Mailbox()
HTTP = HttpReceiver()
READER_KEY = "open311-reader-with-descriptions"
SUBMIT_KEY = "open311-submit-only"
SYSTEM_ENV = {
    "SMTP_PORT": str(MAILBOX.port),
    "SMS_GATEWAY_URL": HTTP.url("/sms"),
    "NOTIFICATIONS_RETRY_BASE_SECONDS": "0.4",
    "NOTIFICATIONS_MAX_ATTEMPTS": "3",
    "OURVOICE_OPEN311_KEYS": f"{SUBMIT_KEY}, {READER_KEY}:read-descriptions",
}
OFFICES = {
    "commune-120101": "commune-120101@offices.example.org",
    "owso-1201": "owso-1201@offices.example.org",
    "district-ombudsman-1201": "ombudsman-1201@offices.example.org",
    "provincial-ombudsman-12": "ombudsman-12@offices.example.org",
}
DESCRIPTION = "My husband beats me; the village chief laughed when I told him."
QUESTION = "When did he last hit you?"
ANSWER = "Last Friday night, at home."
RESOLUTION = "A protection order was requested and a shelter place is ready for you."
COMMENT = "He is still in the house."
FINDINGS = "The village chief failed to act on a report of violence."
RECOMMENDATION = "The district removes him from handling such reports."
WORDS = (DESCRIPTION, QUESTION, ANSWER, RESOLUTION, COMMENT, FINDINGS, RECOMMENDATION,
         "hit you", "shelter", "beats me")
CATEGORY = "gender-based-violence"


@pytest.fixture(scope="module", autouse=True)
def receivers():
    MAILBOX.start()
    HTTP.start()
    try:
        yield
    finally:
        MAILBOX.stop()
        HTTP.stop()


def ourvoice(system, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), *args], env=system.env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def hooks(system, tmp_path_factory):
    """The offices' addresses in the directory, and four webhooks: the commune's and the
    district's areas, the OWSO's office, and the district ombudsman's office."""
    csv = tmp_path_factory.mktemp("directory") / "contacts.csv"
    csv.write_text("office_id,email,phone\n" + "".join(
        f"{office},{mail},\n" for office, mail in OFFICES.items()), encoding="utf-8")
    assert ourvoice(system, "directory", "import", str(csv)).returncode == 0
    registered = {}
    for name, target in (("commune", ("--area", "120101")), ("district", ("--area", "1201")),
                         ("owso", ("--office", "owso-1201")),
                         ("ombudsman", ("--office", "district-ombudsman-1201"))):
        done = ourvoice(system, "webhooks", "add", "--url", HTTP.url(f"/hooks/{name}"), *target)
        assert done.returncode == 0, done.stderr
        registered[name] = (done.stdout.split()[1], done.stdout.strip().splitlines()[-1])
    wait_until(lambda: system.scalar("SELECT count(*) FROM notifications_webhooks") == 4,
               what="webhooks registered")
    return registered


@contextmanager
def bound(system, *routing_keys):
    """A queue of the test's own for each binding, as an office system would bind one."""
    with system.broker() as connection, ExitStack() as cleanup:
        drains = {}
        for key in routing_keys:
            queue = Queue(f"probe.sensitive.{uuid.uuid4().hex[:8]}", exchange=EVENTS,
                          routing_key=key, durable=False, auto_delete=False)
            channel = connection.channel()
            cleanup.callback(channel.close)
            queue = queue(channel)
            queue.declare()
            cleanup.callback(queue.delete)
            seen: list = []

            def drain(queue=queue, seen=seen) -> list:
                while (message := queue.get(no_ack=True)) is not None:
                    raw = message.body if isinstance(message.body, bytes) \
                        else message.body.encode()
                    seen.append((message.delivery_info["routing_key"], json.loads(raw), raw))
                return seen

            drains[key] = drain
        yield drains


def queued(system, office_id, tracking_code):
    response = system.call("GET", "routing", f"/v1/offices/{office_id}/queue",
                           system.principal("auditor"), params={"limit": 500})
    assert response.status_code == 200, response.text
    return next((c for c in response.json()["cases"] if c["tracking_code"] == tracking_code),
                None)


def act(system, case, action, role, office, body=None):
    """An ombudsman's command, tried until routing has the case where it accepts it."""
    token = system.principal(role, office)
    path = f"/v1/cases/{case['case_id']}/{action}"
    return wait_until(lambda: (r := system.call("POST", "routing", path, token, json=body or {}))
                      .status_code == 200 and r, what=f"{action} accepted")




def test_a_gender_based_violence_case_reaches_only_its_ombudsman_and_never_with_words(
        system, hooks):
    with bound(system, "*.12.1201", "*.12.*", "*.sensitive.12.*", "#") as probes:
        case = submit(system, complaint(
            category=CATEGORY, description=DESCRIPTION, language="en",
            complainant={"anonymous": False, "email": "citizen@example.org",
                         "gender": "female"}))
        code = case["tracking_code"]
        wait_until(lambda: queued(system, "district-ombudsman-1201", code),
                   what="the case at the district ombudsman")
        act(system, case, "acknowledge", "ombudsman", "district-ombudsman-1201")
        act(system, case, "request-info", "ombudsman", "district-ombudsman-1201",
            {"question": QUESTION})
        # The citizen reads the question, though no event carried it.
        asked = wait_until(lambda: (v := citizen_view(system, case))["status"]
                           == "waiting-for-citizen" and v, what="the question at the citizen")
        assert asked["question"] == QUESTION and "answer" in asked["can"]
        assert any(e["detail"] == QUESTION for e in asked["timeline"])
        answered = system.call("POST", "intake", f"/v1/cases/{code}/messages",
                               case["citizen_token"], json={"text": ANSWER})
        assert answered.status_code == 200, answered.text
        act(system, case, "resolve", "ombudsman", "district-ombudsman-1201",
            {"resolution": RESOLUTION})
        wait_until(lambda: citizen_view(system, case)["resolution"] == RESOLUTION,
                   what="the resolution at the citizen")
        appealed = system.call("POST", "intake", f"/v1/cases/{code}/feedback",
                               case["citizen_token"],
                               json={"satisfied": False, "rating": 1, "comment": COMMENT})
        assert appealed.status_code == 200, appealed.text
        wait_until(lambda: queued(system, "provincial-ombudsman-12", code),
                   what="the appeal at the provincial ombudsman")
        act(system, case, "findings", "ombudsman", "provincial-ombudsman-12",
            {"findings": FINDINGS, "recommendation": RECOMMENDATION})
        act(system, case, "close", "ombudsman", "provincial-ombudsman-12")
        closed = wait_until(lambda: (v := citizen_view(system, case))["status"] == "closed"
                            and v, what="closed at the citizen")
        assert (closed["findings"], closed["recommendation"]) == (FINDINGS, RECOMMENDATION)

        # An ordinary case of the same commune, after it: once its events are at the
        # commune's webhook and subscribers, the sensitive case's would have been too.
        ordinary = submit(system, complaint(description="The tap is dry."))
        wait_until(lambda: {"CaseSubmitted", "CaseRouted"} <= {
            r.json()["event_type"] for r in HTTP.at("/hooks/commune")
            if r.json()["tracking_code"] == ordinary["tracking_code"]},
            what="the ordinary case at the commune's webhook")
        for key in ("*.12.1201", "*.12.*"):
            wait_until(lambda key=key: any(
                body["tracking_code"] == ordinary["tracking_code"]
                and body["event_type"] == "CaseRouted" for _, body, _ in probes[key]()),
                what=f"the ordinary case at {key}")
        expected = {"CaseSubmitted", "CaseRouted", "CaseAcknowledged", "InformationRequested",
                    "InformationProvided", "CaseResolved", "FeedbackReceived", "CaseAppealed",
                    "CaseEscalated", "OmbudsmanFindingsRecorded", "CaseClosed",
                    "NotificationSent"}
        sensitive = wait_until(lambda: (found := [m for m in probes["*.sensitive.12.*"]()
                                                  if m[1]["tracking_code"] == code])
                               and expected <= {body["event_type"] for _, body, _ in found}
                               and found, what="every event at the ombudsman's binding")
        at_ombudsman = wait_until(lambda: (found := [r for r in HTTP.at("/hooks/ombudsman")
                                                     if r.json()["tracking_code"] == code])
                                  and {"CaseRouted", "CaseAcknowledged", "InformationRequested",
                                       "InformationProvided", "CaseResolved"}
                                  <= {r.json()["event_type"] for r in found} and found,
                                  what="the case at the ombudsman's webhook")
        internal = [m for m in probes["#"]() if m[1]["tracking_code"] == code]
        resolved_mail = wait_until(lambda: [m for m in MAILBOX.to("citizen@example.org")
                                            if "resolved" in m.message["Subject"]],
                                   what="the citizen told of the resolution")
        area = {key: probes[key]() for key in ("*.12.1201", "*.12.*")}

    # Below the ombudsman: nothing of the case, by any route.
    for name in ("commune", "district", "owso"):
        assert not [r for r in HTTP.at(f"/hooks/{name}", accepted_only=False)
                    if code.encode() in r.body or case["case_id"].encode() in r.body], name
    for key in ("*.12.1201", "*.12.*"):
        assert not [m for m in area[key] if m[1]["tracking_code"] == code], key
    for office in ("commune-120101", "owso-1201"):
        assert not [m for m in MAILBOX.to(OFFICES[office]) if code in m.raw.decode()], office
    assert [m for m in MAILBOX.to(OFFICES["district-ombudsman-1201"]) if code in m.raw.decode()]

    # The ombudsman's binding and webhook: every event, no words, no category.
    for routing_key, body, raw in sensitive:
        assert routing_key == f"{body['event_type']}.sensitive.12.1201"
        assert body["sensitive"] is True
        text = raw.decode()
        assert not [w for w in WORDS if w in text], (body["event_type"], text)
        assert CATEGORY not in text
    data = {body["event_type"]: body["data"] for _, body, _ in sensitive}
    assert data["CaseSubmitted"]["category"] == "sensitive"
    no_deadlines = {"acknowledge_due": None, "resolve_due": None}
    assert data["InformationRequested"] == {"question": None, **no_deadlines}
    assert data["CaseResolved"] == {"resolution": None, **no_deadlines}
    assert data["OmbudsmanFindingsRecorded"] == {"findings": None, "recommendation": None}
    secret = hooks["ombudsman"][1]
    for request in at_ombudsman:
        assert signed_correctly(request, secret)
        assert request.json()["office_id"] == "district-ombudsman-1201"
        assert not [w for w in WORDS if w in request.body.decode()]
        assert CATEGORY not in request.body.decode()
    # Internal services bind `#` and get the same events (routing worked the case).
    assert {body["event_id"] for _, body, _ in sensitive} <= {
        body["event_id"] for _, body, _ in internal}
    # The citizen is told the status, not the words: a phone is read by others too.
    assert not [w for w in WORDS if w in resolved_mail[0].raw.decode("utf-8", "replace")]
    questions = [m for m in MAILBOX.to("citizen@example.org")
                 if "asks about" in m.message["Subject"]]
    assert questions and QUESTION not in questions[0].raw.decode("utf-8", "replace")

    # Reporting sees one bucket for sensitive cases, never their category.
    summary = wait_until(lambda: (s := system.call(
        "GET", "reporting", "/v1/reports/summary", system.principal("auditor")).json())
        .get("by_category", {}).get("sensitive") and s, what="the case counted")
    assert CATEGORY not in summary["by_category"]


def test_open311_lists_no_sensitive_case_and_descriptions_only_for_a_granted_key(system):
    ordinary = submit(system, complaint(category="land", description="Land title delayed"))
    secret = submit(system, complaint(category=CATEGORY, description=DESCRIPTION))
    other = submit(system, complaint(category="abuse-by-official",
                                     description="The clerk asked me for money."))

    def get(path, **params):
        return requests.get(system.url("intake", f"/open311/v2/{path}"), params=params,
                            timeout=10)

    def listed(**params):
        response = get("requests.json", **params)
        assert response.status_code == 200, response.text
        return response.json()

    public = wait_until(lambda: (found := listed()) and ordinary["tracking_code"] in {
        r["service_request_id"] for r in found} and found, what="the ordinary case listed")
    codes = {r["service_request_id"] for r in public}
    assert secret["tracking_code"] not in codes and other["tracking_code"] not in codes
    assert all(r["description"] is None for r in public), "no description without a key"
    text = json.dumps(public, ensure_ascii=False)
    assert DESCRIPTION not in text and "Land title" not in text and CATEGORY not in text
    # Asked for by id, a sensitive case is as unknown as one that never existed.
    for code in (secret["tracking_code"], other["tracking_code"]):
        assert listed(service_request_id=code) == []
        missing = get(f"requests/{code}.json")
        assert missing.status_code == 404
        assert missing.json() == get("requests/22222-22222.json").json()
        assert get(f"requests/{code}.json", api_key=READER_KEY).status_code == 404
    (one,) = get(f"requests/{ordinary['tracking_code']}.json").json()
    assert one["description"] is None

    granted = {r["service_request_id"]: r for r in listed(api_key=READER_KEY)}
    assert granted[ordinary["tracking_code"]]["description"] == "Land title delayed"
    assert secret["tracking_code"] not in granted and other["tracking_code"] not in granted
    (one,) = get(f"requests/{ordinary['tracking_code']}.json", api_key=READER_KEY).json()
    assert one["description"] == "Land title delayed"
    # A key that may only submit reads what the public reads; a key nobody gave, nothing.
    assert all(r["description"] is None for r in listed(api_key=SUBMIT_KEY))
    refused = get("requests.json", api_key="guessed-key")
    assert refused.status_code == 403 and refused.json()[0]["description"].startswith(
        "api_key: ")
    posted = requests.post(system.url("intake", "/open311/v2/requests.json"), timeout=10, data={
        "api_key": SUBMIT_KEY, "service_code": "water-supply", "address_id": "120101",
        "description": "Dry tap"})
    assert posted.status_code == 201, posted.text


def test_no_webhook_secret_in_plain_text_and_older_registrations_keep_working(system, hooks):
    # A registration as the first version kept it: its secret in plain text in the table.
    old_id, old_secret = uuid.uuid4(), "an-older-registration-secret"
    system.query("INSERT INTO notifications_webhooks (webhook_id, url, secret, area, "
                 "registered_at) VALUES (%s, %s, %s, '1702', now()) RETURNING webhook_id",
                 (old_id, HTTP.url("/hooks/older"), old_secret))
    system.stop("notifications")
    system.start("notifications")
    with bound(system, "#") as probes:
        case = submit(system, complaint(location={"commune": "170201"}))
        older = wait_until(lambda: [r for r in HTTP.at("/hooks/older")
                                    if r.json()["tracking_code"] == case["tracking_code"]],
                           what="an event at the older webhook")
        assert signed_correctly(older[0], old_secret)
        time.sleep(0.5)
        published = b"".join(raw for _, _, raw in probes["#"]())

    secrets = [old_secret, *(secret for _, secret in hooks.values())]
    tables = [row["table_name"] for row in system.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
    assert "notifications_events" in tables and "notifications_webhooks" in tables
    for table in tables:
        for row in system.query(f"SELECT t::text AS row FROM {table} t"):
            for secret in secrets:
                assert secret not in row["row"], table
                assert secret.encode().hex() not in row["row"], table
    for secret in secrets:
        assert secret.encode() not in published
    assert system.scalar("SELECT count(*) FROM notifications_webhooks WHERE secret IS NOT NULL "
                         "OR sealed_secret IS NULL") == 0
