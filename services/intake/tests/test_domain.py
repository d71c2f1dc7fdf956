import uuid

import pytest
from eventsourcing.application import Application

from services.intake.domain import (
    ALPHABET,
    Case,
    case_id_for,
    format_tracking_code,
    nfc,
    normalise_tracking_code,
)


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
