import uuid
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.application import Application

from services.intake.domain import Case, MessageLimits, NotAllowed, TooManyMessages, nfc
from shared.tracking import ALPHABET, case_id_for, format_tracking_code, normalise_tracking_code


def submitted_case(code="K7M2P-9QX4R", **overrides):
    fields = dict(
        case_id=case_id_for(code),
        context={"tracking_code": code, "commune": "120101", "office_id": None},
        type="complaint", category="water-supply", description="ទឹក", language="km",
        anonymous=True, gender="female", rating=None, citizen_token_hash="0" * 64,
        fingerprint="f", channel="app",
    )
    fields.update(overrides)
    return Case(**fields)


def test_tracking_codes_avoid_confusable_characters_and_read_back():
    for number in (0, 1, 2**63, 2**64 - 1, 123456789):
        code = format_tracking_code(number)
        assert len(code) == 11 and code[5] == "-"
        assert not set(code.replace("-", "")) & set("01OIL")
        assert normalise_tracking_code(code.lower().replace("-", " ")) == code
    assert normalise_tracking_code("K7M2P-9QX40") is None  # 0 is never used
    assert normalise_tracking_code("short") is None
    assert len(set(ALPHABET)) == 31


def test_the_case_id_follows_from_the_tracking_code():
    assert case_id_for("K7M2P-9QX4R") == case_id_for("K7M2P-9QX4R")
    assert case_id_for("K7M2P-9QX4R") != case_id_for("K7M2P-9QX4S")


def test_khmer_is_stored_in_one_normal_form():
    khmer = "ទឹកស្អាតមិនហូរ"
    assert nfc(khmer) == khmer  # Khmer typed in normal form is kept exactly
    assert nfc("Cafe\u0301 ទឹក") == "Caf\u00e9 ទឹក"  # a decomposed accent is composed


def test_a_submitted_case_replays_from_its_events():
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    case = submitted_case()
    app.save(case)
    copy = app.repository.get(case.id)
    assert (copy.tracking_code, copy.commune, copy.category) == ("K7M2P-9QX4R", "120101",
                                                                 "water-supply")
    events = list(app.events.get(case.id))
    assert [type(e).__name__ for e in events] == ["CaseSubmitted"]
    assert events[0].context["tracking_code"] == "K7M2P-9QX4R"


def test_two_cases_with_the_same_code_cannot_both_be_recorded():
    from eventsourcing.persistence import IntegrityError

    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.save(submitted_case())
    with pytest.raises(IntegrityError):
        app.save(submitted_case(fingerprint="other"))
    assert uuid.UUID(str(case_id_for("K7M2P-9QX4R")))


def test_an_office_question_is_answered_once_and_later_messages_are_the_citizens_own():
    case = submitted_case()
    assert case.send_message("ចម្លើយ", "waiting-for-citizen", "q1", "commune-120101") is True
    assert case.send_message("one more thing", "waiting-for-citizen", "q1", None) is False
    assert case.send_message("hello", "routed", None, None) is False
    assert case.send_message("and the next", "waiting-for-citizen", "q2", None) is True
    provided = [e for e in case.collect_events() if type(e).__name__ == "InformationProvided"]
    assert [e.answers_request for e in provided] == [True, False, False, True]
    assert provided[0].context == {"tracking_code": "K7M2P-9QX4R", "commune": "120101",
                                   "office_id": "commune-120101"}


def test_a_case_takes_so_many_messages_a_day_and_in_all_but_always_the_answer_asked_for():
    case, limits = submitted_case(), MessageLimits(per_case=4, per_day=2)
    now = datetime.now(UTC)
    for _ in range(2):
        case.send_message("x", "routed", None, None, limits, now)
    with pytest.raises(TooManyMessages) as today:
        case.send_message("x", "routed", None, None, limits, now)
    assert 86_000 < today.value.retry_after <= 86_401
    tomorrow = now + timedelta(days=1, seconds=1)
    for _ in range(2):
        case.send_message("x", "routed", None, None, limits, tomorrow)
    with pytest.raises(TooManyMessages) as full:
        case.send_message("x", "routed", None, None, limits, tomorrow + timedelta(days=2))
    assert full.value.retry_after is None and "at most 4 messages" in full.value.message
    assert case.send_message("the village", "waiting-for-citizen", "q1", None, limits,
                             tomorrow) is True
    assert len(case.messages) == 5


@pytest.mark.parametrize("status", ["closed", "withdrawn"])
def test_a_closed_or_withdrawn_case_takes_no_message_and_cannot_be_withdrawn(status):
    case = submitted_case()
    with pytest.raises(NotAllowed):
        case.send_message("hello?", status, None, None)
    with pytest.raises(NotAllowed):
        case.withdraw(None, status, None)
    assert case.possible_actions(status, None, None) == []


def test_after_withdrawing_the_citizen_can_do_nothing_more_whatever_the_view_says():
    case = submitted_case()
    case.withdraw("solved it myself", "routed", "commune-120101")
    assert case.status_seen_by_citizen("routed") == "withdrawn"
    for act in (lambda: case.send_message("x", "routed", None, None),
                lambda: case.withdraw(None, "routed", None),
                lambda: case.give_feedback(True, 5, None, "resolved", "r1", None)):
        with pytest.raises(NotAllowed):
            act()


def test_feedback_needs_a_resolution_and_is_given_once_for_each():
    case = submitted_case()
    with pytest.raises(NotAllowed, match="resolved"):
        case.give_feedback(True, 5, None, "acknowledged", None, None)
    assert "feedback" in case.possible_actions("resolved", None, "r1")
    case.give_feedback(True, 4, "ok", "resolved", "r1", "commune-120101")
    with pytest.raises(NotAllowed, match="already"):
        case.give_feedback(False, 1, None, "resolved", "r1", None)
    assert "feedback" not in case.possible_actions("resolved", None, "r1")
    # A second resolution (after an appeal) can be rated again; not satisfied appeals.
    case.give_feedback(False, 1, "nothing changed", "resolved", "r2", None)
    names = [type(e).__name__ for e in case.collect_events()]
    assert names == ["CaseSubmitted", "FeedbackReceived", "FeedbackReceived", "CaseAppealed"]


def test_erasure_is_recorded_once_and_only_where_there_is_personal_data():
    anonymous = submitted_case()
    assert anonymous.personal_data == "none"
    assert anonymous.erase_personal_data("operator", None) is False
    known = submitted_case(anonymous=False, sealed_contact="c2VhbGVk", consent_to_contact=True)
    assert known.personal_data == "kept"
    assert known.erase_personal_data("operator", "commune-120101") is True
    assert known.erase_personal_data("operator", None) is False
    assert known.personal_data == "erased"


def test_the_history_replays_with_the_personal_data_read_as_erased():
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    case = submitted_case(anonymous=False, sealed_contact="c2VhbGVk", consent_to_contact=True)
    case.send_message("ចម្លើយ", "waiting-for-citizen", "q1", None)
    case.erase_personal_data("operator", None)
    app.save(case)
    copy = app.repository.get(case.id)
    assert copy.personal_data == "erased"
    assert copy.sealed_contact == "c2VhbGVk"  # the ciphertext stays; its key does not
    assert [m["text"] for m in copy.messages] == ["ចម្លើយ"]
    erased = list(app.events.get(case.id))[-1]
    assert type(erased).__name__ == "PersonalDataErased" and erased.erased_by == "operator"
