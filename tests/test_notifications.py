"""Notifications through the real services: who is told what, on which channel, in which
language; a real SMTP server, an SMS gateway and office systems' webhook receivers of the
test's own on 127.0.0.1; retries, dead letters, redeliveries and an older event version."""

import json
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from kombu import Queue

from services.notifications.channels import message_id
from services.notifications.messages import DEFAULT_DIRECTORY, Templates
from services.notifications.segments import segments
from shared.topology import EVENTS, dead_letter_queue_name
from tests.receivers import (
    HttpReceiver,
    Mailbox,
    basic_auth,
    signed_correctly,
)
from tests.system import ROOT, complaint, submit, wait_until

pytestmark = pytest.mark.e2e

MAILBOX = Mailbox()
HTTP = HttpReceiver()
# The service's templates, less one Khmer translation: that message must go out in English.
TEMPLATES = Path(tempfile.mkdtemp(prefix="ourvoice-templates-"))
shutil.copytree(DEFAULT_DIRECTORY, TEMPLATES, dirs_exist_ok=True)
(TEMPLATES / "km" / "case-routed.yaml").unlink()

SYSTEM_ENV = {
    "SMTP_PORT": str(MAILBOX.port),
    "SMS_GATEWAY_URL": HTTP.url("/sms"),
    "SMS_GATEWAY_USER": "ourvoice",
    "SMS_GATEWAY_PASSWORD": "gateway-password",
    "NOTIFICATIONS_TEMPLATES": str(TEMPLATES),
    "NOTIFICATIONS_RETRY_BASE_SECONDS": "0.4",
    "NOTIFICATIONS_MAX_ATTEMPTS": "3",
    "NOTIFICATIONS_SEND_TIMEOUT": "2",
    # Deadlines of seconds (construction permits breach after three), swept often.
    "OURVOICE_SLA_POLICIES": str(ROOT / "tests" / "data" / "sla-seconds.yaml"),
    "OURVOICE_SWEEP_SECONDS": "0.2",
}

OFFICES = {
    "commune-120101": ("commune-120101@offices.example.org", "023 120 101"),
    "owso-1701": ("owso-1701@offices.example.org", ""),
    "district-ombudsman-1701": ("ombudsman-1701@offices.example.org", "063 170 100"),
    # Imported as someone typed it: not a number any gateway could send to.
    "commune-120110": ("commune-120110@offices.example.org", "ask at the desk"),
}
KHMER_QUESTION = "តើទឹកដាច់តាំងពីថ្ងៃណា? សូមប្រាប់ផ្លូវ និងលេខផ្ទះ។"


@pytest.fixture(scope="module", autouse=True)
def receivers():
    MAILBOX.start()
    HTTP.start()
    try:
        yield
    finally:
        MAILBOX.stop()
        HTTP.stop()
        shutil.rmtree(TEMPLATES, ignore_errors=True)


def ourvoice(system, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), *args], env=system.env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def offices(system, tmp_path_factory):
    """Operators give offices an email and phone in the directory."""
    csv = tmp_path_factory.mktemp("directory") / "contacts.csv"
    csv.write_text("office_id,email,phone\n" + "".join(
        f"{office},{mail},{phone}\n" for office, (mail, phone) in OFFICES.items()),
        encoding="utf-8")
    done = ourvoice(system, "directory", "import", str(csv))
    assert done.returncode == 0, done.stderr

    def listed():
        offices = system.call("GET", "routing", "/v1/offices",
                              params={"district": "1701"}).json()
        return any(o["id"] == "owso-1701" and o["email"] for o in offices)

    wait_until(listed, what="office contacts in the directory")
    return OFFICES


def citizen(n: int, *, phone=True, email=True, **extra) -> dict:
    person = {"anonymous": False, "name": f"Sok Dara {n}", "gender": "female", **extra}
    if phone:
        person["phone"] = f"012 555 {n:03d}"
    if email:
        person["email"] = f"citizen{n}@example.org"
    return person


def rows(system, tracking_code: str, **where) -> list[dict]:
    clauses = "".join(f" AND {column} = %({column})s" for column in where)
    return system.query("SELECT * FROM notifications_outbox WHERE tracking_code = %(code)s"
                        + clauses + " ORDER BY due_at", {"code": tracking_code, **where})


def delivered(system, tracking_code: str, message: str, channel: str, recipient="citizen",
              timeout=20.0) -> dict:
    """The delivery of a message, once it is recorded as sent."""
    return wait_until(lambda: next(iter(rows(system, tracking_code, message=message,
                                             channel=channel, recipient=recipient,
                                             state="sent")), None),
                      timeout=timeout, what=f"{message} to {recipient} by {channel} sent")


def sms(delivery: dict):
    found = [r for r in HTTP.at("/sms") if r.json()["reference"] == str(delivery["delivery_id"])]
    assert len(found) == 1, f"{len(found)} SMS for delivery {delivery['delivery_id']}"
    return found[0]


def mail(delivery: dict):
    found = [m for m in MAILBOX.mails if m.delivery == str(delivery["delivery_id"])]
    assert len(found) == 1, f"{len(found)} emails for delivery {delivery['delivery_id']}"
    return found[0]


@contextmanager
def probe(system, routing_key="#"):
    """Every public event published from now on, by event id."""
    with system.broker() as connection:
        queue = Queue("probe.notifications", exchange=EVENTS, routing_key=routing_key,
                      durable=False, auto_delete=False)
        bound = queue(connection.default_channel)
        bound.declare()
        seen: dict[str, tuple] = {}

        def drain() -> dict[str, tuple]:
            while (message := bound.get(no_ack=True)) is not None:
                body = json.loads(message.body)
                seen[body["event_id"]] = (body, message)
            return seen

        try:
            yield drain
        finally:
            bound.delete()


def stored_bytes(system) -> bytes:
    return b"".join(bytes(r["state"]) for r in system.query("SELECT state FROM notifications_events"))


# -- the citizen ---------------------------------------------------------------------

def test_the_citizen_hears_in_khmer_by_sms_and_email_byte_for_byte(system, offices):
    person = citizen(1)
    case = submit(system, complaint(complainant=person, language="km"))
    code = case["tracking_code"]
    expected = Templates().render("case-received", "km", {}, code, None)
    assert "យើងបានទទួលករណី" in expected.sms

    text = sms(delivered(system, code, "case-received", "sms"))
    assert expected.sms.encode("utf-8") in text.body, "Khmer bytes as they are, not escaped"
    assert text.json() == {"to": "+85512555001", "text": expected.sms, "sender": "OurVoice",
                           "reference": text.json()["reference"]}
    assert text.headers["Authorization"] == basic_auth("ourvoice", "gateway-password")

    delivery = delivered(system, code, "case-received", "email")
    letter = mail(delivery)
    assert letter.recipients == ["citizen1@example.org"]
    assert letter.message["Message-ID"] == message_id(str(delivery["delivery_id"]))
    assert letter.message["Subject"] == expected.subject
    assert letter.message.get_content_charset() == "utf-8"
    assert letter.message.get_payload(decode=True) == expected.email.encode("utf-8")

    # The contact came from intake at send time and was kept nowhere by notifications.
    kept = stored_bytes(system)
    log = (system.logs / "notifications.log").read_bytes()
    for secret in ("012 555 001", "+85512555001", "citizen1@example.org", "Sok Dara 1"):
        assert secret.encode() not in kept and secret.encode() not in log, secret


def test_a_missing_translation_goes_out_in_english_and_the_log_says_so(system, offices):
    case = submit(system, complaint(complainant=citizen(2, phone=False), language="km"))
    code = case["tracking_code"]
    letter = mail(delivered(system, code, "case-routed", "email"))
    english = Templates().render("case-routed", "en", {"office_id": "commune-120101"}, code,
                                 "commune-120101")
    assert letter.message["Subject"] == english.subject
    assert letter.message.get_content().replace("\r\n", "\n") == english.email
    assert "no km translation of message 'case-routed'" in \
        (system.logs / "notifications.log").read_text(encoding="utf-8")
    # Messages that have their Khmer translation still go out in Khmer.
    received = mail(delivered(system, code, "case-received", "email"))
    assert received.message["Subject"].startswith("សំឡេងយើង")


def test_a_case_from_question_to_closing_as_the_citizen_and_the_office_hear_it(system, offices):
    case = submit(system, complaint(complainant=citizen(3), language="km"))
    code, path = case["tracking_code"], f"/v1/cases/{case['case_id']}"
    staff = system.principal("staff", "commune-120101")
    office_mail, office_phone = OFFICES["commune-120101"]

    new_case = delivered(system, code, "new-case", "email", recipient="commune-120101")
    assert mail(new_case).recipients == [office_mail]
    assert mail(new_case).message["Subject"] == \
        f"សំឡេងយើង៖ ករណីថ្មី {code} សម្រាប់ សាលាឃុំ/សង្កាត់ ទន្លេបាសាក់"
    # The directory has the number as people write it; the gateway gets it in E.164.
    assert office_phone == "023 120 101"
    assert sms(delivered(system, code, "new-case", "sms", recipient="commune-120101")).json()[
        "to"] == "+85523120101"

    assert system.call("POST", "routing", path + "/acknowledge", staff).status_code == 200
    asked = system.call("POST", "routing", path + "/request-info", staff,
                        json={"question": KHMER_QUESTION})
    assert asked.status_code == 200, asked.text
    question = sms(delivered(system, code, "information-requested", "sms"))
    assert KHMER_QUESTION.encode("utf-8") in question.body
    assert KHMER_QUESTION in mail(delivered(system, code, "information-requested", "email")
                                  ).message.get_content()

    citizen_token = case["citizen_token"]
    answered = system.call("POST", "intake", f"/v1/cases/{code}/messages",
                           citizen_token, json={"text": "ចាប់ពីថ្ងៃច័ន្ទ ផ្លូវ ៣៦០"})
    assert answered.status_code in (200, 201), answered.text
    answer = mail(delivered(system, code, "information-provided", "email",
                            recipient="commune-120101"))
    assert "ចាប់ពីថ្ងៃច័ន្ទ" not in answer.message.get_content(), "the citizen's words stay in"

    wait_until(lambda: system.call("POST", "routing", path + "/resolve", staff,
                                   json={"resolution": "បានជួសជុលបំពង់ទឹករួចហើយ"}
                                   ).status_code == 200, what="resolved once the clock restarted")
    resolved = mail(delivered(system, code, "case-resolved", "email")).message.get_content()
    assert "បានជួសជុលបំពង់ទឹករួចហើយ" in resolved and "តើអ្នកពេញចិត្តទេ?" in resolved

    feedback = system.call("POST", "intake", f"/v1/cases/{code}/feedback", citizen_token,
                           json={"satisfied": True, "rating": 5})
    assert feedback.status_code in (200, 201), feedback.text
    closed = sms(delivered(system, code, "case-closed", "sms")).json()["text"]
    assert closed == Templates().render("case-closed", "km", {"outcome": "satisfied"}, code,
                                        None).sms


def test_deadlines_and_escalations_reach_the_office_the_ombudsman_and_the_citizen(system,
                                                                                   offices):
    case = submit(system, complaint(category="construction-permits", language="en",
                                    location={"commune": "170101"},
                                    complainant=citizen(4, phone=False)))
    code = case["tracking_code"]
    owso, _ = OFFICES["owso-1701"]
    ombudsman_mail, ombudsman_phone = OFFICES["district-ombudsman-1701"]
    warning = mail(delivered(system, code, "deadline-warning", "email", recipient="owso-1701"))
    breach = mail(delivered(system, code, "deadline-breached", "email", recipient="owso-1701"))
    assert warning.recipients == breach.recipients == [owso]
    escalation = delivered(system, code, "escalation", "email",
                           recipient="district-ombudsman-1701")
    assert mail(escalation).recipients == [ombudsman_mail]
    assert ombudsman_phone == "063 170 100"
    assert sms(delivered(system, code, "escalation", "sms", recipient="district-ombudsman-1701")
               ).json()["to"] == "+85563170100"
    told = mail(delivered(system, code, "case-escalated", "email")).message.get_content()
    assert "Angkor Chum District Ombudsman, the ombudsman" in told
    assert "because Angkor Chum One Window Service Office did not answer in time" in told
    # The office has no phone in the directory: it is given no SMS at all.
    assert rows(system, code, channel="sms", recipient="owso-1701") == []


def test_a_missed_deadline_told_in_khmer_words_in_cambodia_s_time(system, offices):
    """Khmer readers get sentences: no reason code, no deadline's name, no office id;
    the time in Cambodia's time with the zone said; phones in E.164."""
    case = submit(system, complaint(category="construction-permits", language="km",
                                    location={"commune": "170101"},
                                    complainant=citizen(9, email=False)))
    code = case["tracking_code"]
    codes = ("breach", "ombudsman-breach", "resolve", "acknowledge", "category-level",
             "owso-1701", "district-ombudsman-1701", "construction-permits", "escalated")

    def readable(text):
        return not [c for c in codes if c in text.replace(code, "")]

    breach = mail(delivered(system, code, "deadline-breached", "email", recipient="owso-1701"))
    told = breach.message.get_content()
    assert readable(told), told
    assert "ខែ" in told and "ម៉ោងនៅកម្ពុជា UTC+7" in told, "Cambodia's time, the zone said"
    assert "ករណីនេះត្រូវបានបញ្ជូនទៅ អង្គភាពទទួលបណ្តឹងស្រុក/ខណ្ឌ អង្គរជុំ" in told

    escalation = sms(delivered(system, code, "escalation", "sms",
                               recipient="district-ombudsman-1701")).json()
    assert escalation["to"] == "+85563170100"
    assert readable(escalation["text"]) and \
        "មកដល់អ្នកពី ការិយាល័យច្រកចេញចូលតែមួយ អង្គរជុំ ដែលហួសពេលកំណត់" in escalation["text"]

    citizen_sms = sms(delivered(system, code, "case-escalated", "sms")).json()
    assert citizen_sms["to"] == "+85512555009"
    assert readable(citizen_sms["text"]), citizen_sms["text"]
    assert "ព្រោះ ការិយាល័យច្រកចេញចូលតែមួយ អង្គរជុំ មិនបានឆ្លើយតបទាន់ពេល" in citizen_sms["text"]
    assert segments(citizen_sms["text"]) <= 3
    # Events waiting for their predecessor are normal: never logged as errors.
    log = (system.logs / "notifications.log").read_text(encoding="utf-8")
    assert "NotYet" not in log


def test_an_office_phone_that_is_no_number_skips_the_sms_and_says_why(system, offices):
    case = submit(system, complaint(location={"commune": "120110"}))
    code = case["tracking_code"]
    delivered(system, code, "new-case", "email", recipient="commune-120110")
    skipped = wait_until(lambda: next(iter(rows(system, code, channel="sms",
                                                recipient="commune-120110", state="skipped")),
                                      None), what="the office's SMS skipped")
    assert skipped["last_error"] == ("phone number not usable: a phone number has only "
                                     "digits, spaces, dashes and a leading +")
    assert not [r for r in HTTP.at("/sms") if code in r.json()["text"]]


def test_anonymous_citizens_are_never_contacted(system, offices):
    case = submit(system, complaint())  # anonymous
    code = case["tracking_code"]
    delivered(system, code, "new-case", "email", recipient="commune-120101")
    staff = system.principal("staff", "commune-120101")
    path = f"/v1/cases/{case['case_id']}"
    assert system.call("POST", "routing", path + "/acknowledge", staff).status_code == 200
    assert system.call("POST", "routing", path + "/resolve", staff,
                       json={"resolution": "fixed"}).status_code == 200
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM notifications_events e JOIN notifications_outbox o "
        "ON o.delivery_id = e.originator_id WHERE o.tracking_code = %s", (code,)) > 0,
        what="the office's notices recorded")
    time.sleep(0.5)  # a notice for the citizen would be recorded by now
    assert [r for r in rows(system, code) if r["recipient"] == "citizen"] == []


def test_without_consent_the_citizen_is_not_contacted(system, offices):
    case = submit(system, complaint(complainant=citizen(5, consent_to_contact=False)))
    code = case["tracking_code"]
    wait_until(lambda: {r["state"] for r in rows(system, code, recipient="citizen")} == {"skipped"}
               and len(rows(system, code, recipient="citizen")) >= 4,
               what="the citizen's notices skipped")
    assert {r["last_error"] for r in rows(system, code, recipient="citizen")} == {
        "no contact: anonymous, no consent, erased or unknown"}
    assert not MAILBOX.to("citizen5@example.org")
    assert not [r for r in HTTP.at("/sms") if r.json()["to"] == "+85512555005"]


# -- office systems ------------------------------------------------------------------

def register(system, *args) -> tuple[str, str]:
    done = ourvoice(system, "webhooks", "add", *args)
    assert done.returncode == 0, done.stderr
    webhook_id = done.stdout.split()[1]
    return webhook_id, done.stdout.strip().splitlines()[-1]


def test_office_systems_get_their_area_s_events_signed_and_as_published(system, offices):
    province_hook, province_secret = register(system, "--url", HTTP.url("/hooks/phnom-penh"),
                                              "--area", "12")
    office_hook, _ = register(system, "--url", HTTP.url("/hooks/owso-1701"), "--office",
                              "owso-1701", "--secret", "owso-1701-shared-secret")
    listed = ourvoice(system, "webhooks", "list")
    assert province_hook in listed.stdout and office_hook in listed.stdout
    assert province_secret not in listed.stdout, "a secret is shown once, when it is made"
    wait_until(lambda: system.scalar("SELECT count(*) FROM notifications_webhooks") >= 2,
               what="webhooks registered")

    with probe(system) as published:
        here = submit(system, complaint(description="in Phnom Penh"))
        there = submit(system, complaint(category="construction-permits",
                                         location={"commune": "170101"}))
        staff = system.principal("staff", "commune-120101")
        path = f"/v1/cases/{here['case_id']}"
        wait_until(lambda: system.call("POST", "routing", path + "/acknowledge", staff
                                       ).status_code == 200, what="acknowledged")
        assert system.call("POST", "routing", path + "/request-info", staff,
                           json={"question": KHMER_QUESTION}).status_code == 200

        def posted(hook_path, code):
            return [r for r in HTTP.at(hook_path) if r.json()["tracking_code"] == code]

        wait_until(lambda: {r.json()["event_type"] for r in posted("/hooks/phnom-penh",
                                                                   here["tracking_code"])}
                   >= {"CaseSubmitted", "CaseRouted", "CaseAcknowledged",
                       "InformationRequested"}, what="Phnom Penh's events at its hook")
        wait_until(lambda: {"CaseRouted", "SlaWarning"} <= {
            r.json()["event_type"] for r in posted("/hooks/owso-1701", there["tracking_code"])},
            what="the OWSO's events at its hook")
        events = published()

    assert posted("/hooks/phnom-penh", there["tracking_code"]) == []
    assert posted("/hooks/owso-1701", here["tracking_code"]) == []
    for request in posted("/hooks/phnom-penh", here["tracking_code"]):
        assert signed_correctly(request, province_secret)
        assert not signed_correctly(request, "some-other-secret-entirely")
        assert abs(int(request.headers["X-OurVoice-Timestamp"]) - time.time()) < 60
        body = request.json()
        assert request.headers["X-OurVoice-Event"] == body["event_type"]
        assert body == events[body["event_id"]][0], "the public event as it was published"
        assert not body["event_type"].startswith("Notification")
    question = next(r for r in posted("/hooks/phnom-penh", here["tracking_code"])
                    if r.json()["event_type"] == "InformationRequested")
    assert KHMER_QUESTION.encode("utf-8") in question.body
    deliveries = [r.headers["X-OurVoice-Delivery"] for r in HTTP.at("/hooks/phnom-penh")]
    assert len(deliveries) == len(set(deliveries))

    removed = ourvoice(system, "webhooks", "remove", office_hook)
    assert removed.returncode == 0, removed.stderr
    assert office_hook not in ourvoice(system, "webhooks", "list").stdout


def test_a_failing_webhook_backs_off_is_dead_lettered_and_blocks_nothing(system, offices):
    HTTP.status["/hooks/broken"] = 500
    hook, secret = register(system, "--url", HTTP.url("/hooks/broken"), "--area", "120101")
    wait_until(lambda: system.scalar("SELECT count(*) FROM notifications_webhooks "
                                     "WHERE webhook_id = %s", (hook,)), what="registered")
    case = submit(system, complaint(complainant=citizen(6, phone=False)))
    code = case["tracking_code"]
    # Everything else goes out while the hook fails.
    delivered(system, code, "case-received", "email")
    delivered(system, code, "new-case", "email", recipient="commune-120101")

    def dead():
        return [r for r in rows(system, code, channel="webhook", about_type="CaseSubmitted")
                if r["state"] == "dead"]

    letter = wait_until(dead, timeout=30, what="the CaseSubmitted webhook dead-lettered")[0]
    assert letter["attempts"] == 3 and letter["last_error"] == "webhook HTTP 500"
    tries = [r.at for r in HTTP.at("/hooks/broken", accepted_only=False)
             if r.headers["X-OurVoice-Delivery"] == str(letter["delivery_id"])]
    assert len(tries) == 3
    waits = [b - a for a, b in zip(tries, tries[1:], strict=False)]
    assert waits[0] >= 0.35 and waits[1] >= 0.75 and waits[1] > waits[0], waits
    failed = system.scalar("SELECT count(*) FROM notifications_events WHERE originator_id = %s "
                           "AND topic LIKE %s", (letter["delivery_id"], "%NotificationFailed"))
    assert failed == 3

    listed = ourvoice(system, "webhooks", "dead-letters")
    assert str(letter["delivery_id"]) in listed.stdout and code in listed.stdout
    admin = system.principal("admin")
    answer = system.call("GET", "notifications", "/v1/notifications/dead-letters", admin)
    assert answer.status_code == 200
    assert str(letter["delivery_id"]) in {d["delivery_id"] for d in answer.json()}
    assert system.call("GET", "notifications", "/v1/notifications/dead-letters",
                       system.principal("staff", "commune-120101")).status_code == 403
    assert system.call("GET", "notifications", "/v1/notifications/dead-letters").status_code == 401

    HTTP.status["/hooks/broken"] = 200  # the office system is fixed; the operator retries
    retried = ourvoice(system, "webhooks", "dead-letters", "--retry", str(letter["delivery_id"]))
    assert retried.returncode == 0, retried.stderr
    wait_until(lambda: rows(system, code, delivery_id=letter["delivery_id"])[0]["state"] == "sent",
               what="the dead letter sent after the retry")
    accepted = [r for r in HTTP.at("/hooks/broken")
                if r.headers["X-OurVoice-Delivery"] == str(letter["delivery_id"])]
    assert len(accepted) == 1 and signed_correctly(accepted[0], secret)
    again = ourvoice(system, "webhooks", "dead-letters", "--retry", str(letter["delivery_id"]))
    assert again.returncode == 1 and "dead letter" in again.stderr


# -- exactly once, old versions ----------------------------------------------------

def test_a_redelivered_event_sends_nothing_twice(system, offices):
    with probe(system, "CaseSubmitted.#") as published:
        case = submit(system, complaint(complainant=citizen(7)))
        code = case["tracking_code"]
        for message_name in ("case-received", "case-routed"):
            for channel in ("sms", "email"):
                delivered(system, code, message_name, channel)
        for channel in ("sms", "email"):
            delivered(system, code, "new-case", channel, recipient="commune-120101")
        wait_until(system.settled, what="every event of the case read")
        body, message = next(v for v in wait_until(published, what="the event on the bus"
                                                   ).values() if v[0]["tracking_code"] == code)
    before = len(rows(system, code))
    for _ in range(2):
        system.publish_raw(message.delivery_info["routing_key"], message.body,
                           headers=message.headers, as_service="intake")
    time.sleep(1.5)
    assert len(rows(system, code)) == before
    assert len(MAILBOX.to("citizen7@example.org")) == len(
        rows(system, code, recipient="citizen", channel="email", state="sent"))
    assert len([r for r in HTTP.at("/sms") if r.json()["to"] == "+85512555007"]) == len(
        rows(system, code, recipient="citizen", channel="sms", state="sent"))


def test_an_event_of_an_older_schema_version_is_still_read(system, offices):
    """CaseClosed version 1 said nothing of why the case closed; version 2 says it. A
    version-1 message is upcast on reading: every consumer takes it, none dead-letters it."""
    from shared.events import MalformedEvent, read_event

    # Bound before the case exists: its CaseRouted can be published within milliseconds.
    with probe(system, "CaseRouted.#") as published:
        case = submit(system, complaint(complainant=citizen(8, phone=False), language="en"))
        code = case["tracking_code"]
        delivered(system, code, "case-routed", "email")
        routed = next(v[0] for v in wait_until(published, what="CaseRouted").values()
                      if v[0]["tracking_code"] == code)
    old = {**routed, "event_id": "0c6b5f1e-6a43-4d1b-9f0e-4d0b6f1f0001", "event_type": "CaseClosed",
           "schema_version": 1, "sequence": 9, "data": {}}
    assert read_event(old)["data"] == {"outcome": None}
    with pytest.raises(MalformedEvent):
        read_event({**old, "schema_version": 2})  # version 2 without its field is not valid

    position = 10**9
    system.publish_raw(f"CaseClosed.{old['location']['province']}.{old['location']['district']}",
                       json.dumps(old).encode(),
                       headers={"ourvoice-source": "routing", "ourvoice-position": position},
                       as_service="routing")
    closed = mail(delivered(system, code, "case-closed", "email")).message.get_content()
    assert closed.startswith(f"Your case {code} is closed.\r\n"), "the words for no outcome"
    for service in ("intake", "reporting", "notifications"):
        wait_until(lambda s=service: system.scalar(
            f"SELECT count(*) FROM {s}_tracking WHERE application_name = 'routing' "
            "AND notification_id = %s", (position,)), what=f"{service} read the old version")
    with system.broker() as connection:
        for service in ("intake", "reporting", "notifications"):
            _, waiting, _ = connection.default_channel.queue_declare(
                dead_letter_queue_name(service), passive=True)
            assert waiting == 0, service
