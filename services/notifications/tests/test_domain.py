import uuid

from services.notifications.domain import notices_for, notification_id


def event(event_type, **data):
    return {"event_type": event_type, "data": data}


def test_anonymous_citizens_are_never_contacted():
    assert notices_for(event("CaseSubmitted", anonymous=True)) == []
    assert notices_for(event("CaseSubmitted", anonymous=False)) == [("citizen", "case-received")]


def test_offices_hear_of_new_cases():
    assert notices_for(event("CaseRouted", office_id="owso-1201")) == [
        ("office", "new-case-in-queue")]


def test_one_notice_per_event_recipient_and_channel():
    event_id = uuid.uuid4()
    assert notification_id(event_id, "office", "sms") == notification_id(event_id, "office", "sms")
    assert notification_id(event_id, "office", "sms") != notification_id(event_id, "office", "email")
