"""Notifications' use cases on eventsourcing's in-memory persistence."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from services.notifications.application import (
    Notifications,
    SubmissionNotRead,
    Try,
    UnknownDelivery,
    UnknownWebhook,
)
from services.notifications.domain import (
    CaseAudience,
    NotDue,
    RetrySchedule,
    Subscription,
    Webhook,
    audience_id,
)
from services.notifications.webhooks import seal_secret

LEASE = timedelta(seconds=60)
RETRY = RetrySchedule(base_seconds=2, attempts=2)
CASE = uuid.uuid4()


@pytest.fixture
def store():
    return Notifications(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def event(event_type, office_id="commune-120101", occurred_at=None, case_id=CASE, **data):
    """A public event as the consumer hands it over: validated, with UUIDs and times."""
    return {"event_id": uuid.uuid4(), "event_type": event_type, "case_id": case_id,
            "tracking_code": "PKG3J-JUT6T", "office_id": office_id,
            "location": {"province": "12", "district": "1201", "commune": "120101"},
            "occurred_at": occurred_at or datetime.now(UTC), "data": data}


positions = iter(range(1, 1_000_000))


def tracking():
    return Tracking(application_name="routing", notification_id=next(positions))


def record(store, e, webhooks=(), reachable=lambda notice: True, at=None):
    return store.record_notices([(e, at or tracking())], webhooks=lambda: webhooks,
                                reachable=reachable)


def told(deliveries):
    return {(d.recipient_role, d.recipient, d.message, d.channel) for d in deliveries}


def test_a_submission_is_remembered_and_its_citizen_told_once(store):
    at = tracking()
    due = record(store, event("CaseSubmitted", anonymous=False), at=at)
    assert told(due) == {("citizen", "citizen", "case-received", "sms"),
                         ("citizen", "citizen", "case-received", "email")}
    assert store.repository.get(audience_id(CASE)).anonymous is False
    for delivery in due:
        assert store.repository.get(delivery.id).state == "due"
    with pytest.raises(IntegrityError):
        record(store, event("CaseSubmitted", anonymous=False), at=at)


def test_an_anonymous_citizen_is_never_told_and_the_event_is_still_tracked(store):
    case = uuid.uuid4()
    record(store, event("CaseSubmitted", case_id=case, anonymous=True))
    at = tracking()
    assert record(store, event("CaseResolved", office_id=None, case_id=case,
                               resolution="fixed"), at=at) == []
    # Nothing to record, yet the event's position is taken: a redelivery is refused.
    with pytest.raises(IntegrityError):
        record(store, event("CaseResolved", office_id=None, case_id=case), at=at)


def test_a_cases_audience_is_read_from_the_store_once(store, monkeypatch):
    case, other = uuid.uuid4(), uuid.uuid4()
    record(store, event("CaseSubmitted", case_id=case, anonymous=True))
    record(store, event("CaseSubmitted", case_id=other, anonymous=False))
    store.audiences.clear()  # as in an instance that did not take the submissions
    reads = []
    get = store.repository.get
    monkeypatch.setattr(store.repository, "get", lambda *a, **k: reads.append(a) or get(*a, **k))
    for _ in range(3):
        assert record(store, event("CaseResolved", office_id=None, case_id=case,
                                   resolution="fixed")) == []
        assert told(record(store, event("CaseResolved", office_id=None, case_id=other,
                                        resolution="fixed"))) == {
            ("citizen", "citizen", "case-resolved", "sms"),
            ("citizen", "citizen", "case-resolved", "email")}
    assert reads == [(audience_id(case),), (audience_id(other),)]


def test_a_later_event_waits_for_its_submission_only_so_long(store):
    case = uuid.uuid4()
    with pytest.raises(SubmissionNotRead):
        record(store, event("CaseResolved", office_id=None, case_id=case, resolution="x"))
    old = datetime.now(UTC) - timedelta(hours=1)
    due = record(store, event("CaseResolved", office_id=None, case_id=case, occurred_at=old,
                              resolution="x"))
    assert told(due) == {("citizen", "citizen", "case-resolved", "sms"),
                         ("citizen", "citizen", "case-resolved", "email")}


def test_our_own_outcomes_are_not_even_tracked(store):
    at = tracking()
    assert record(store, event("NotificationSent"), at=at) == []
    store.recorder.insert_tracking(at)  # the position is still free


def test_offices_without_an_address_on_a_channel_and_webhooks(store):
    hook = Subscription(uuid.uuid4(), area="1201")
    e = event("SlaBreached", office_id="owso-1201", deadline="resolve")
    due = record(store, e, webhooks=(hook,), reachable=lambda notice: notice.channel != "sms")
    assert told(due) == {("office", "owso-1201", "deadline-breached", "email"),
                         ("office-system", str(hook.id), "SlaBreached", "webhook")}
    (to_hook,) = [d for d in due if d.channel == "webhook"]
    (to_office,) = [d for d in due if d.channel == "email"]
    # An office system gets the public event as it came, in its JSON form.
    assert to_hook.details["event_id"] == str(e["event_id"])
    assert to_hook.details["occurred_at"] == e["occurred_at"].isoformat()
    assert to_office.details == {"deadline": "resolve"}
    assert to_office.case["case_id"] == str(CASE)


def due_delivery(store, channel="email"):
    e = event("SlaWarning", office_id="owso-1201", deadline="resolve")
    (delivery,) = [d for d in record(store, e) if d.recipient != "citizen"
                   and d.channel == channel]
    return store.repository.get(delivery.id)


def test_a_pass_of_the_sender_records_skips_attempts_and_failures_before_a_send(store):
    now = datetime.now(UTC)
    skipped, failing, sending = (due_delivery(store) for _ in range(3))
    saved = store.start_tries([Try(skipped, skipped="no email address"),
                               Try(failing, error="routing did not answer"), Try(sending)],
                              now, LEASE, RETRY)
    assert saved == {skipped.id, failing.id, sending.id}
    assert store.repository.get(skipped.id).state == "skipped"
    assert store.repository.get(failing.id).state == "retrying"
    assert store.repository.get(failing.id).attempts == 1
    assert store.repository.get(sending.id).state == "sending"
    assert store.repository.get(sending.id).lease_until == now + LEASE


def test_outcomes_sent_failed_then_dead_lettered_and_requeued(store):
    now = datetime.now(UTC)
    ok, failing = due_delivery(store), due_delivery(store, channel="sms")
    store.start_tries([Try(ok), Try(failing)], now, LEASE, RETRY)
    assert store.record_outcomes([(ok, None), (failing, "SMTP 451")], now, RETRY) \
        == {ok.id, failing.id}
    assert store.repository.get(ok.id).state == "sent"
    failing = store.repository.get(failing.id)
    assert failing.state == "retrying"
    later = failing.retry_at
    store.start_tries([Try(failing)], later, LEASE, RETRY)
    store.record_outcomes([(failing, "SMTP 451")], later, RETRY)
    assert store.repository.get(failing.id).state == "dead"

    with pytest.raises(NotDue):
        store.requeue(str(ok.id), by="admin")
    assert store.requeue(str(failing.id), by="admin").state == "due"
    again = store.repository.get(failing.id)
    assert again.state == "due" and again.tries == 0 and again.attempts == 2


def test_only_a_delivery_can_be_requeued(store):
    with pytest.raises(UnknownDelivery):
        store.requeue("not-an-id", by="admin")
    with pytest.raises(UnknownDelivery):
        store.requeue(str(uuid.uuid4()), by="admin")
    case = uuid.uuid4()
    record(store, event("CaseSubmitted", case_id=case, anonymous=True))
    assert isinstance(store.repository.get(audience_id(case)), CaseAudience)
    with pytest.raises(UnknownDelivery):
        store.requeue(str(audience_id(case)), by="admin")


def test_two_senders_on_one_delivery_record_one_attempt(store):
    now = datetime.now(UTC)
    delivery = due_delivery(store)
    copy, other_copy = store.repository.get(delivery.id), store.repository.get(delivery.id)
    assert store.start_tries([Try(delivery)], now, LEASE, RETRY) == {delivery.id}
    assert store.start_tries([Try(copy)], now, LEASE, RETRY) == set()
    # The others of a batch that lost one race are still recorded, each on its own.
    other = due_delivery(store)
    assert store.start_tries([Try(other_copy), Try(other)], now, LEASE, RETRY) == {other.id}
    assert store.repository.get(delivery.id).attempts == 1
    assert store.repository.get(other.id).state == "sending"


def test_webhooks_are_registered_sealed_and_removed_once(store):
    secret = "a-secret-of-the-office-system"
    with pytest.raises(ValueError):
        store.register_webhook("ftp://office.example", secret, "1201", None, by="operator",
                               seal=seal_secret)
    hook = store.register_webhook("https://office.example/hook", secret, "1201", None,
                                  by="operator", seal=seal_secret)
    recorded = store.repository.get(hook.id)
    assert isinstance(recorded, Webhook) and recorded.area == "1201"
    assert recorded.sealed_secret and secret not in recorded.sealed_secret
    store.remove_webhook(str(hook.id), by="operator")
    assert store.repository.get(hook.id).removed
    for gone in (str(hook.id), str(uuid.uuid4()), "nonsense"):
        with pytest.raises(UnknownWebhook):
            store.remove_webhook(gone, by="operator")
