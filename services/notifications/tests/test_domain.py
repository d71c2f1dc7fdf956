import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag

from services.notifications.domain import (
    Delivery,
    NotDue,
    Notice,
    RetrySchedule,
    Subscription,
    delivery_id,
    notices_for,
)
from services.notifications.messages import Templates
from shared.settings import reload

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def event(event_type, office_id="commune-120101", commune="120101", **data):
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "case_id": str(uuid.uuid4()),
            "tracking_code": "PKG3J-JUT6T", "office_id": office_id,
            "location": {"province": commune[:2], "district": commune[:4], "commune": commune},
            "data": data}


def told(notices):
    return {(n.recipient_role, n.recipient, n.message) for n in notices}


def test_anonymous_citizens_are_never_contacted():
    assert notices_for(event("CaseSubmitted", anonymous=True), anonymous=None) == []
    assert told(notices_for(event("CaseResolved", resolution="x"), anonymous=True)) == set()
    assert {n.channel for n in notices_for(event("CaseSubmitted", anonymous=False),
                                           anonymous=None)} == {"sms", "email"}


def test_who_hears_what():
    assert told(notices_for(event("CaseRouted", office_id="owso-1201"), anonymous=False)) == {
        ("citizen", "citizen", "case-routed"), ("office", "owso-1201", "new-case")}
    assert told(notices_for(event("CaseEscalated", office_id="district-ombudsman-1201"),
                            anonymous=False)) == {
        ("citizen", "citizen", "case-escalated"),
        ("ombudsman", "district-ombudsman-1201", "escalation")}
    assert told(notices_for(event("SlaBreached"), anonymous=False)) == {
        ("office", "commune-120101", "deadline-breached")}
    assert told(notices_for(event("InformationProvided", answers_request=True),
                            anonymous=False)) == {("office", "commune-120101",
                                                   "information-provided")}
    # A message of the citizen's own accord is read in the queue; nobody is paged for it.
    assert notices_for(event("InformationProvided", answers_request=False), anonymous=False) == []
    assert notices_for(event("CaseAcknowledged"), anonymous=False) == []


def test_our_own_outcomes_never_call_for_notices():
    hook = Subscription(uuid.uuid4(), area="12")
    assert notices_for(event("NotificationSent"), anonymous=False, webhooks=(hook,)) == []
    assert notices_for(event("NotificationFailed"), anonymous=False, webhooks=(hook,)) == []


def test_webhooks_match_their_area_or_office():
    province, district = Subscription(uuid.uuid4(), area="12"), Subscription(uuid.uuid4(),
                                                                              area="1201")
    office = Subscription(uuid.uuid4(), office_id="owso-1701")
    elsewhere = event("CaseAcknowledged", office_id="commune-170101", commune="170101")
    here = event("CaseAcknowledged", commune="120101")
    assert province.matches(here) and district.matches(here) and not office.matches(here)
    assert not province.matches(elsewhere) and not district.matches(elsewhere)
    moved = event("CaseTransferred", office_id="owso-1702", commune="170101",
                  from_office_id="owso-1701")
    assert office.matches(moved), "the office a case leaves hears of it too"
    assert [n.channel for n in notices_for(here, anonymous=False,
                                           webhooks=(province, office))] == ["webhook"]


def test_a_sensitive_case_is_heard_only_by_its_ombudsman_and_its_citizen():
    commune_hook = Subscription(uuid.uuid4(), area="120101")
    district_hook = Subscription(uuid.uuid4(), area="1201")
    owso_hook = Subscription(uuid.uuid4(), office_id="owso-1201")
    ombudsman_hook = Subscription(uuid.uuid4(), office_id="district-ombudsman-1201")
    hooks = (commune_hook, district_hook, owso_hook, ombudsman_hook)
    routed = {**event("CaseRouted", office_id="district-ombudsman-1201"), "sensitive": True}
    assert told(notices_for(routed, anonymous=False, webhooks=hooks)) == {
        ("citizen", "citizen", "case-routed"),
        ("ombudsman", "district-ombudsman-1201", "new-case"),
        ("office-system", str(ombudsman_hook.id), "CaseRouted")}
    # Should such a case ever stand at an office below the ombudsman, it hears nothing.
    below = {**event("SlaWarning", office_id="owso-1201", from_office_id="owso-1201"),
             "sensitive": True}
    assert notices_for(below, anonymous=False, webhooks=hooks) == []
    onwards = {**event("CaseEscalated", office_id="provincial-ombudsman-12",
                       from_office_id="district-ombudsman-1201"), "sensitive": True}
    assert not ombudsman_hook.matches(onwards), "only the office that holds it"


def test_a_webhook_secret_is_recorded_sealed_and_opens_only_for_its_webhook():
    from services.notifications.domain import Webhook
    from services.notifications.webhooks import open_secret, seal_secret

    secret = "a-secret-of-the-office-system"
    hook = Webhook.register(uuid.uuid4(), "https://office.example/hook", secret, "1201", None,
                            by="operator", seal=seal_secret)
    (registered,) = hook.collect_events()
    assert secret not in repr(registered.__dict__)
    assert open_secret(hook.id, registered.sealed_secret) == secret
    assert seal_secret(hook.id, secret) == registered.sealed_secret, "the same row on rebuild"
    with pytest.raises(InvalidTag):
        open_secret(uuid.uuid4(), registered.sealed_secret)


def test_one_delivery_per_event_recipient_and_channel():
    event_id = uuid.uuid4()
    assert delivery_id(event_id, "owso-1201", "sms") == delivery_id(event_id, "owso-1201", "sms")
    assert delivery_id(event_id, "owso-1201", "sms") != delivery_id(event_id, "owso-1201", "email")
    assert delivery_id(event_id, "citizen", "sms") != delivery_id(event_id, "owso-1201", "sms")


def delivery():
    e = event("CaseRouted")
    return Delivery.due(e, Notice("office", "commune-120101", "new-case", "email"), e["data"])


def test_one_try_at_a_time_and_a_dead_sender_is_replaced_after_its_lease():
    d = delivery()
    d.attempt(NOW, timedelta(seconds=60))
    with pytest.raises(NotDue):
        d.attempt(NOW + timedelta(seconds=59), timedelta(seconds=60))
    d.attempt(NOW + timedelta(seconds=61), timedelta(seconds=60))
    assert d.attempts == 2 and d.state == "sending"
    d.sent()
    with pytest.raises(NotDue):
        d.attempt(NOW + timedelta(days=1), timedelta(seconds=60))


def test_failures_back_off_exponentially_then_dead_letter_and_an_operator_requeues():
    schedule = RetrySchedule(base_seconds=2, attempts=3)
    d = delivery()
    at = NOW
    waits = []
    for _ in range(3):
        d.attempt(at, timedelta(seconds=10))
        d.failed("webhook HTTP 500", at, schedule)
        if d.retry_at:
            waits.append((d.retry_at - at).total_seconds())
            assert not d.attemptable(d.retry_at - timedelta(seconds=0.1))
            at = d.retry_at
    assert waits == [2, 4]
    assert d.state == "dead" and d.finished
    d.requeue(by="operator")
    assert d.attemptable(at) and d.tries == 0 and d.attempts == 3
    with pytest.raises(NotDue):
        d.requeue(by="operator")


def test_the_outcome_is_public_and_names_the_case():
    from shared.events import public_event, read_event

    d = delivery()
    d.attempt(NOW, timedelta(seconds=10))
    d.sent()
    sent = [e for e in d.collect_events() if type(e).__name__ == "NotificationSent"][0]
    envelope = public_event("notifications", 7, sent)
    assert envelope["case_id"] == d.case["case_id"]
    read = read_event(envelope)
    assert read["data"] == {"channel": "email", "message": "new-case", "recipient_role": "office"}


def test_a_missing_translation_falls_back_to_english_and_says_so(tmp_path, caplog):
    (tmp_path / "en").mkdir()
    (tmp_path / "km").mkdir()
    (tmp_path / "en" / "case-received.yaml").write_text(
        'subject: "Received {{ tracking_code }}"\nsms: "Code {{ tracking_code }}"\n')
    rendered = Templates(tmp_path).render("case-received", "km", {}, "PKG3J-JUT6T", None)
    assert rendered.language == "en" and rendered.sms == "Code PKG3J-JUT6T"
    assert rendered.email == "Code PKG3J-JUT6T\n"
    assert "no km translation of message 'case-received'" in caplog.text


def test_every_message_has_both_languages_and_renders_khmer_intact():
    templates = Templates()
    details = {"question": "តើទឹកដាច់ពីពេលណា?", "resolution": "បានជួសជុលបំពង់ទឹក",
               "deadline": "resolve", "due_at": "2026-12-01T03:00:00+00:00", "reason": "breach",
               "outcome": None, "office_id": "owso-1201", "from_office_id": "commune-120101",
               "acknowledge_due": None}
    for message in ("case-received", "case-routed", "information-requested", "case-resolved",
                    "case-escalated", "case-closed", "new-case", "escalation",
                    "deadline-warning", "deadline-breached", "information-provided"):
        for language in ("km", "en"):
            rendered = templates.render(message, language, details, "PKG3J-JUT6T", "owso-1201")
            assert rendered.language == language, (message, language)
            assert "PKG3J-JUT6T" in rendered.sms and rendered.subject and rendered.email
    asked = templates.render("information-requested", "km", details, "PKG3J-JUT6T", "owso-1201")
    assert "តើទឹកដាច់ពីពេលណា?" in asked.sms
    assert "1 December 2026, 10:00 (Cambodia time, UTC+7)" in templates.render(
        "deadline-warning", "en", details, "X", None).sms


def test_a_reading_of_the_case_file_tells_no_one():
    hook = Subscription(id=uuid.uuid4(), area="12")
    opened = event("CaseFileOpened", role="staff", office_id="commune-120101")
    assert notices_for(opened, anonymous=False, webhooks=(hook,)) == []


@pytest.mark.parametrize("language", ["km", "en"])
def test_the_office_is_sent_to_the_case_s_page_in_the_console(monkeypatch, language):
    case_id = str(uuid.uuid4())
    monkeypatch.delenv("OURVOICE_CONSOLE_URL", raising=False)
    monkeypatch.setenv("ROUTING_ADDRESS", "10.0.0.5:8002")
    reload()
    rendered = Templates().render("information-provided", language, {"answers_request": True},
                                  "PKG3J-JUT6T", "commune-120101", case_id)
    assert f"http://10.0.0.5:8002/console/#/cases/{case_id}" in rendered.email
    monkeypatch.setenv("OURVOICE_CONSOLE_URL", "https://ourvoice.gov.kh/")
    reload()
    rendered = Templates().render("information-provided", language, {"answers_request": True},
                                  "PKG3J-JUT6T", "commune-120101", case_id)
    assert f"https://ourvoice.gov.kh/console/#/cases/{case_id}" in rendered.email
    assert "queue" not in rendered.email and "ជួរ" not in rendered.email
