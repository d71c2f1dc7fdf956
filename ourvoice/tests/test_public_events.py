"""The kernel's public events (shared/events.py) checked against what the services'
aggregates really store: a test of the whole, so it lives with the layer that composes
the services, and the kernel's own tests import no service."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain import Case as Submitted
from services.routing.deadlines import policies_from
from services.routing.domain import Case
from shared.categories import categories
from shared.events import (
    _SCHEMA_INSTANCES,
    DATA_SCHEMAS,
    EVENT_ID_NAMESPACE,
    MalformedEvent,
    envelope_of,
    event_data,
    public_event,
    read_event,
    routing_key,
)
from shared.history import plain


def routed_event():
    policies = policies_from({"default": {"acknowledge": "P2D", "resolve": "P15D"}})
    case = Case.route(uuid.uuid4(), "K7M2P-9QX4R", "120101", "complaint",
                      categories()["water-supply"], datetime(2026, 1, 5, tzinfo=UTC), policies)
    return case.collect_events()[0]


def test_a_stored_event_becomes_a_public_envelope_that_reads_back():
    envelope = public_event("routing", 7, routed_event())
    assert envelope["event_type"] == "CaseRouted"
    assert envelope["location"] == {"province": "12", "district": "1201", "commune": "120101"}
    assert envelope["office_id"] == "commune-120101"
    assert routing_key("CaseRouted", envelope["location"]) == "CaseRouted.12.1201"
    assert set(envelope["data"]) == {"office_id", "reason", "acknowledge_due", "resolve_due"}
    again = public_event("routing", 7, routed_event())
    assert again["event_id"] == envelope["event_id"], "same place in the log, same id"
    assert envelope["event_id"] == str(uuid.uuid5(EVENT_ID_NAMESPACE, "routing:7"))
    assert envelope["data"]["resolve_due"].startswith("2026-01-")
    read = read_event(json.loads(json.dumps(envelope)))
    assert read["data"]["office_id"] == "commune-120101"
    assert read["data"]["reason"] == "category-level"


@pytest.mark.parametrize("body", [
    [], "x", {}, {"event_type": "CaseRouted"},
])
def test_anything_else_is_malformed(body):
    with pytest.raises(MalformedEvent):
        read_event(body)


def test_an_unknown_event_type_is_malformed():
    envelope = public_event("routing", 7, routed_event())
    envelope["event_type"] = "CaseExploded"
    with pytest.raises(MalformedEvent):
        read_event(json.loads(json.dumps(envelope)))


def test_internal_events_are_not_published():
    class Internal:
        pass

    assert public_event("routing", 1, Internal()) is None


def test_every_public_event_type_has_a_schema():
    assert len(DATA_SCHEMAS) == 21


def test_a_reading_of_the_case_file_is_published_with_a_role_and_an_office_never_a_name():
    routed = routed_event()
    case = routed.mutate(None)
    case.open_file(by="sokha.chan", role="staff", office_id="commune-120101")
    envelope = public_event("routing", 8, case.collect_events()[-1])
    assert envelope["event_type"] == "CaseFileOpened"
    assert envelope["data"] == {"role": "staff", "office_id": "commune-120101"}
    assert "sokha" not in json.dumps(envelope)
    read = read_event(json.loads(json.dumps(envelope)))
    assert read["data"]["role"] == "staff"



def sensitive_case_events():
    """A GBV case at the district ombudsman: routed, asked, resolved."""
    policies = policies_from({"default": {"acknowledge": "P2D", "resolve": "P15D"}})
    case = Case.route(uuid.uuid4(), "K7M2P-9QX4R", "120101", "complaint",
                      categories()["gender-based-violence"], datetime(2026, 1, 5, tzinfo=UTC),
                      policies)
    case.acknowledge(by="p-ombudsman")
    case.request_information("When did he last hit you?", by="p-ombudsman",
                             now=datetime(2026, 1, 5, 2, tzinfo=UTC))
    return case.collect_events()


def test_a_sensitive_case_travels_without_words_or_category_under_its_own_key():
    routed, acknowledged, asked = (public_event("routing", n, e)
                                   for n, e in enumerate(sensitive_case_events(), 1))
    for envelope in (routed, acknowledged, asked):
        assert envelope["sensitive"] is True
        assert "gender" not in json.dumps(envelope)
    assert asked["data"] == {"question": None, "acknowledge_due": None, "resolve_due": None}
    assert "hit" not in json.dumps(asked)
    assert routing_key("InformationRequested", asked["location"], True) == \
        "InformationRequested.sensitive.12.1201"
    assert read_event(json.loads(json.dumps(asked)))["data"]["question"] is None


def test_an_ordinary_case_keeps_its_words_and_its_three_word_key():
    envelope = public_event("routing", 7, routed_event())
    assert envelope["sensitive"] is False
    assert routing_key("CaseRouted", envelope["location"], envelope["sensitive"]) == \
        "CaseRouted.12.1201"


def test_a_sensitive_submission_names_only_the_bucket_and_the_level():
    case = Submitted(case_id=uuid.uuid4(), context={"tracking_code": "K7M2P-9QX4R",
                     "commune": "120101", "office_id": None}, type="complaint",
                     category="gender-based-violence", description="He hits me", language="km",
                     anonymous=True, gender="female", rating=None, citizen_token_hash="x",
                     fingerprint="y", channel="app", sensitive=True)
    case.withdraw("safe now", status="submitted", office_id=None)
    submitted, withdrawn = (public_event("intake", n, e)
                            for n, e in enumerate(case.collect_events(), 1))
    assert submitted["data"]["category"] == "sensitive"
    assert submitted["data"]["level"] == "district"
    assert submitted["sensitive"] and withdrawn["sensitive"]
    assert "gender-based" not in json.dumps([submitted, withdrawn])
    read = read_event(json.loads(json.dumps(submitted)))
    assert read["data"]["level"] == "district"


def test_events_stored_before_the_context_said_so_are_known_by_their_category():
    routed = sensitive_case_events()[0]
    routed.context.pop("sensitive")
    assert public_event("routing", 1, routed)["sensitive"] is True


def test_every_event_that_moves_a_deadline_says_where_it_is_now():
    """The citizen's view keeps its deadlines from these: the same as routing's."""
    policies = policies_from({"default": {"acknowledge": "PT2H", "resolve": "P10D",
                                          "calendar": "24x7"}})
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    case = Case.route(uuid.uuid4(), "K7M2P-9QX4R", "120101", "complaint",
                      categories()["water-supply"], now, policies)
    case.acknowledge(by="s")
    case.request_information("Which street?", by="s", now=now)
    case.information_provided(now=now + timedelta(days=1))
    case.resolve("Pipe repaired", by="s")
    dues = [(e["event_type"], e["data"].get("acknowledge_due", "absent"),
             e["data"].get("resolve_due", "absent"))
            for e in (read_event(json.loads(json.dumps(public_event("routing", n, stored))))
                      for n, stored in enumerate(case.collect_events(), 1))]
    ten_days, eleven_days = now + timedelta(days=10), now + timedelta(days=11)
    assert dues == [("CaseRouted", now + timedelta(hours=2), ten_days),
                    ("CaseAcknowledged", None, ten_days),
                    ("InformationRequested", None, None),
                    ("ClockRestarted", None, eleven_days),
                    ("CaseResolved", None, None)]


# -- the envelope a rebuild replays is the one the consumer reads -------------------------
def lives_of_cases() -> list[tuple[str, object]]:
    """(store, stored event) of every kind a case goes through in intake and routing: a
    plain case transferred, breached, escalated, resolved, appealed and closed; a
    sensitive one withdrawn; an evaluation."""
    policies = policies_from({"default": {"acknowledge": "PT2H", "resolve": "P10D",
                                          "calendar": "24x7"}})
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    stored = []
    for number, (category, case_type) in enumerate((("water-supply", "complaint"),
                                                    ("abuse-by-official", "complaint"),
                                                    ("water-supply", "evaluation"))):
        code = f"K7M2P-9QX4{number}"
        submitted = Submitted(
            case_id=uuid.uuid4(), context={"tracking_code": code, "commune": "120101",
                                           "office_id": None},
            type=case_type, category=category, description="ទឹកមិនហូរ", language="km",
            anonymous=False, gender="female", rating=4 if case_type == "evaluation" else None,
            citizen_token_hash="0" * 64, fingerprint="f", channel="sms")
        routed = Case.route(submitted.id, code, "120101", case_type, categories()[category],
                            now, policies)
        office = routed.office_id
        routed.acknowledge(by="staff")
        routed.request_information("Which street?", by="staff", now=now)
        submitted.send_message("Street 5", "waiting-for-citizen", "q", office)
        routed.information_provided(now=now + timedelta(hours=1))
        submitted.send_message("Also the well", "acknowledged", None, office)
        submitted.add_attachment("a1", "photo", "image/jpeg", 1234, "0" * 64, [], "citizen",
                                 None, "acknowledged", office)
        if number == 1:
            routed.withdraw()
            submitted.withdraw("solved", "acknowledged", office)
            submitted.erase_personal_data("admin", office)
        else:
            routed.transfer("commune-120102", "not ours", by="staff", now=now,
                            policies=policies)
            routed.check_deadlines(now + timedelta(days=30), policies)  # warned, breached
            routed.acknowledge(by="ombudsman")
            routed.resolve("Pipe repaired", by="ombudsman")
            submitted.give_feedback(False, 2, "still dry", "resolved", "r", routed.office_id)
            routed.appeal(now + timedelta(days=31), policies)
            routed.record_findings("partly repaired", "finish it", by="ombudsman")
            routed.close(by="ombudsman")
        stored += [("intake", e) for e in submitted.collect_events()]
        stored += [("routing", e) for e in routed.collect_events()]
    return stored


def test_the_envelope_a_rebuild_replays_is_the_one_the_consumer_reads_off_the_queue():
    published = set()
    for position, (source, stored) in enumerate(lives_of_cases(), 1):
        wire = public_event(source, position, stored)
        if wire is None:
            continue
        published.add(wire["event_type"])
        assert envelope_of(source, position, stored) == read_event(json.loads(json.dumps(wire)))
    assert published >= {"CaseSubmitted", "CaseRouted", "CaseAcknowledged",
                         "InformationRequested", "InformationProvided", "ClockRestarted",
                         "CaseTransferred", "SlaWarning", "SlaBreached", "CaseEscalated",
                         "CaseResolved", "FeedbackReceived", "OmbudsmanFindingsRecorded",
                         "CaseClosed", "CaseWithdrawn", "PersonalDataErased",
                         "AttachmentAdded"}, published


def test_the_public_data_is_what_its_schema_dumps():
    """`event_data` reads the fields without marshmallow's dump: the same fields, the
    same values (instants the same once written as JSON)."""
    for _source, stored in lives_of_cases():
        schema = _SCHEMA_INSTANCES.get(type(stored).__name__)
        if schema is not None:
            assert plain(event_data(stored)) == schema.dump(stored)
