"""Intake's use cases on eventsourcing's in-memory persistence: the keys and tokens,
the view and the clock are stand-ins, as the service's adapters would pass them."""

import hashlib
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from eventsourcing.application import AggregateNotFoundError
from marshmallow import ValidationError

from services.intake.application import CaseChanged, Desk, Intake, Issued, UsedForAnother
from services.intake.domain import MessageLimits, NotAllowed, TooManyMessages
from services.intake.schemas import DeskCase, SubmitCase
from shared.events import public_event

SUBMISSION = {"type": "complaint", "category": "water-supply", "description": "គ្មានទឹក",
              "location": {"commune": "120101"}, "language": "km"}
KNOWN = {**SUBMISSION, "complainant": {"anonymous": False, "phone": "012 345 678"}}


class Keys:
    """Intake's tables, in memory."""

    def __init__(self):
        self.sealed: dict = {}
        self.erased: set = set()
        self.revoked: list = []

    def issue(self, case_id, contact):
        token = f"token-{case_id}"
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        if not contact:
            return Issued(token, token_hash)
        if case_id in self.erased:
            return Issued(token, token_hash, erased=True)
        self.sealed.setdefault(case_id, f"sealed:{sorted(contact.items())}")
        return Issued(token, token_hash, self.sealed[case_id])

    def revoke_tokens(self, case_id, reason):
        self.revoked.append((case_id, reason))

    def destroy_key(self, case_id):
        self.erased.add(case_id)
        self.sealed.pop(case_id, None)
        return "commune-120101"


def intake() -> Intake:
    return Intake(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def submit(store, payload=SUBMISSION, key=None, keys=None):
    return store.submit(SubmitCase().load(payload), "app", key, keys or Keys())


def view(status="routed", office_id="commune-120101", **more):
    return lambda case_id: {"status": status, "office_id": office_id, **more}


def event_types(store, case_id) -> list[str]:
    return [type(e).__name__ for e in store.events.get(case_id)]


def test_a_submission_is_recorded_as_a_case_and_answered_with_its_code_and_token():
    store = intake()
    answer = submit(store)
    assert answer["status"] == "submitted" and answer["citizen_token"].startswith("token-")
    case = store.case_by_code(answer["tracking_code"].lower().replace("-", " "))
    assert case.id == answer["case_id"] and case.description == "គ្មានទឹក"
    assert (case.anonymous, case.personal_data, case.channel) == (True, "none", "app")
    assert event_types(store, case.id) == ["CaseSubmitted"]
    assert store.case_by_code("not a code") is None and store.case_by_id("nonsense") is None


def test_a_retry_under_the_same_key_is_the_same_case_and_another_submission_is_refused():
    store, keys = intake(), Keys()
    first = submit(store, KNOWN, key="retry-1", keys=keys)
    assert submit(store, KNOWN, key="retry-1", keys=keys) == first
    assert len(store.recorder.select_notifications(start=1, limit=10)) == 1
    assert store.case_by_id(first["case_id"]).personal_data == "kept"
    with pytest.raises(UsedForAnother):
        submit(store, {**KNOWN, "description": "something else"}, key="retry-1", keys=keys)
    # Without a key every submission is a case of its own.
    assert submit(store)["case_id"] != submit(store)["case_id"]


def test_a_retry_after_the_personal_data_was_erased_makes_no_new_key_nor_case():
    store, keys = intake(), Keys()
    first = submit(store, KNOWN, key="retry-2", keys=keys)
    assert store.erase_personal_data(first["case_id"], "operator", keys) == "erased"
    assert submit(store, KNOWN, key="retry-2", keys=keys) == first
    assert first["case_id"] not in keys.sealed


def test_a_message_answers_the_open_question_once_and_is_limited_otherwise():
    store = intake()
    case_id = submit(store)["case_id"]
    waiting = view("waiting-for-citizen", question_id="q1")
    assert store.send_message(case_id, "ចម្លើយ", waiting) == {
        "tracking_code": store.case_by_id(case_id).tracking_code,
        "status": "acknowledged", "answers_request": True}
    again = store.send_message(case_id, "more", waiting)
    assert (again["status"], again["answers_request"]) == ("waiting-for-citizen", False)
    limits = MessageLimits(per_case=2, per_day=2)
    with pytest.raises(TooManyMessages):
        store.send_message(case_id, "and more", view(), limits, datetime.now(UTC))
    assert [m["text"] for m in store.case_by_id(case_id).messages] == ["ចម្លើយ", "more"]


def test_feedback_not_satisfied_is_an_appeal():
    store = intake()
    case_id = submit(store)["case_id"]
    with pytest.raises(NotAllowed):
        store.give_feedback(case_id, True, 5, None, view("acknowledged"))
    resolved = view("resolved", resolution_id="r1")
    assert store.give_feedback(case_id, False, 1, "no water still", resolved)["status"] \
        == "escalated"
    assert event_types(store, case_id)[-2:] == ["FeedbackReceived", "CaseAppealed"]
    appealed = list(store.events.get(case_id))[-1]
    assert appealed.context["office_id"] == "commune-120101"


def test_a_withdrawn_case_takes_nothing_more():
    store = intake()
    case_id = submit(store)["case_id"]
    assert store.withdraw(case_id, "solved", view())["status"] == "withdrawn"
    with pytest.raises(NotAllowed):
        store.send_message(case_id, "hello?", view())
    assert event_types(store, case_id) == ["CaseSubmitted", "CaseWithdrawn"]


def test_a_command_racing_another_on_the_case_is_decided_again_on_the_new_state():
    store = intake()
    case_id = submit(store)["case_id"]
    races = []

    def racing_view(case_id):
        # Another command on the case is recorded between this one's reading and writing.
        if len(races) < 1:
            other = store.repository.get(case_id)
            other.send_message("meanwhile", "routed", None, None)
            store.save(other)
            races.append(1)
        return view()(case_id)

    store.send_message(case_id, "mine", racing_view)
    assert [m["text"] for m in store.case_by_id(case_id).messages] == ["meanwhile", "mine"]

    def always_racing(case_id):
        races.clear()
        return racing_view(case_id)

    with pytest.raises(CaseChanged, match="changed meanwhile"):
        store.send_message(case_id, "never", always_racing)


def test_erasure_revokes_the_tokens_destroys_the_key_and_is_recorded_once():
    store, keys = intake(), Keys()
    anonymous = submit(store, keys=keys)["case_id"]
    assert store.erase_personal_data(anonymous, "operator", keys) == "none"
    assert keys.revoked == [(anonymous, "erased")]
    assert event_types(store, anonymous) == ["CaseSubmitted"]
    known = submit(store, KNOWN, keys=keys)["case_id"]
    for _ in range(2):
        assert store.erase_personal_data(known, "dpo", keys) == "erased"
    assert event_types(store, known) == ["CaseSubmitted", "PersonalDataErased"]
    erased = list(store.events.get(known))[-1]
    assert erased.erased_by == "dpo" and erased.context["office_id"] == "commune-120101"
    assert store.case_by_id(known).personal_data == "erased" and known in keys.erased
    with pytest.raises(AggregateNotFoundError):
        store.erase_personal_data(UUID(int=1), "dpo", keys)


def test_a_case_recorded_at_a_desk_keeps_the_office_the_consent_and_what_it_is_about():
    store, keys = intake(), Keys()
    desk = Desk("commune-120101", True, "signed form", datetime(2026, 11, 2, 9, tzinfo=UTC))
    payload = {**SUBMISSION, "consent": {"given": True, "how": "signed form"},
               "about_this_office": True}
    checked = DeskCase().load(payload)
    assert checked["consent"]["how"] == "signed form" and checked["about_this_office"] is True
    submission = {k: v for k, v in checked.items() if k not in ("consent", "about_this_office")}
    first = store.submit(submission, "office-desk", "desk-1", keys, desk=desk)
    case = store.case_by_id(first["case_id"])
    assert (case.channel, case.recorded_by_office, case.about_recording_office) == (
        "office-desk", "commune-120101", True)
    assert case.consent == {"how": "signed form", "at": "2026-11-02T09:00:00+00:00"}
    # A retry a minute later is the same case: the moment of consent is not compared.
    later = Desk("commune-120101", True, "signed form", desk.consent_at + timedelta(minutes=1))
    assert store.submit(submission, "office-desk", "desk-1", keys, desk=later) == first
    with pytest.raises(UsedForAnother):
        store.submit(submission, "office-desk", "desk-1", keys,
                     desk=Desk("commune-120101", False, "spoken", desk.consent_at))
    event = next(iter(store.events.get(case.id)))
    data = public_event("intake", 1, event)["data"]
    assert (data["channel"], data["recorded_by_office"], data["about_recording_office"]) == (
        "office-desk", "commune-120101", True)
    assert "consent" not in data


@pytest.mark.parametrize("consent, error", [
    (None, "Missing data for required field."),
    ({"given": False, "how": "spoken"}, "staff record a case only with the citizen's consent"),
    ({"given": True, "how": "nodded"}, "Must be one of: spoken, signed form."),
])
def test_a_desk_case_needs_the_citizens_consent(consent, error):

    payload = {**SUBMISSION, **({"consent": consent} if consent is not None else {})}
    with pytest.raises(ValidationError) as refused:
        DeskCase().load(payload)
    assert error in str(refused.value.messages)
