"""Routing's use cases on eventsourcing's in-memory persistence: what intake's events,
the office's commands, readings of the case file and the deadline sweep record."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from services.routing.application import (
    Collided,
    NotAllowed,
    NotRoutedYet,
    Routing,
    UnknownCase,
)
from services.routing.domain import InvalidTransition
from shared.access import Principal
from shared.categories import categories

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
COMMUNE = "120101"
OFFICE = "owso-1201"
STAFF = Principal(role="staff", id="sokha", office_id=OFFICE)
AUDITOR = Principal(role="auditor", id="vanna")


@pytest.fixture
def routing(policies):
    store = Routing(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, deadline_policies=policies)
    yield store
    store.close()


def district_category() -> str:
    return next(code for code, c in sorted(categories().items())
                if c.level == "district" and not c.sensitive)


def intake_event(kind: str, case_id: uuid.UUID, data: dict, at: datetime = T0) -> dict:
    return {"event_type": kind, "case_id": str(case_id), "tracking_code": "OV-TEST-0001",
            "occurred_at": at, "location": {"commune": COMMUNE}, "data": data}


def submitted(case_id: uuid.UUID, **data) -> dict:
    return intake_event("CaseSubmitted", case_id, {"type": "complaint",
                                                   "category": district_category(),
                                                   "language": "km", **data})


def kinds(routing: Routing, case_id) -> list[str]:
    return [type(e).__name__ for e in routing.events.get(case_id)]


def test_a_submitted_case_is_routed_once_with_the_consumers_tracking(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id), Tracking("intake", 1))
    case = routing.case(case_id)
    assert (case.status, case.office_id, case.language) == ("routed", OFFICE, "km")
    assert case.acknowledge_due == T0 + timedelta(hours=2)
    assert routing.recorder.max_tracking_id("intake") == 1
    with pytest.raises(IntegrityError):  # a redelivered message records nothing again
        routing.take(submitted(case_id), Tracking("intake", 1))


def test_routing_follows_the_directorys_merges(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id), redirect=lambda office: "owso-1202")
    assert routing.case(case_id).office_id == "owso-1202"


def test_intake_speaking_of_a_case_not_routed_yet_waits(routing):
    with pytest.raises(NotRoutedYet):
        routing.take(intake_event("CaseWithdrawn", uuid.uuid4(), {}))


def test_the_citizens_answer_restarts_the_clock_and_any_message_is_tracked(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id))
    routing.acknowledge(case_id, STAFF)
    routing.request_information(case_id, STAFF, lambda case: "Which village?", now=T0)
    routing.take(intake_event("InformationProvided", case_id, {"answers_request": False}),
                 Tracking("intake", 7))
    assert routing.case(case_id).status == "waiting-for-citizen"
    assert routing.recorder.max_tracking_id("intake") == 7
    routing.take(intake_event("InformationProvided", case_id, {"answers_request": True},
                              at=T0 + timedelta(hours=1)), Tracking("intake", 8))
    assert routing.case(case_id).status == "acknowledged"
    assert kinds(routing, case_id)[-1] == "ClockRestarted"


def test_an_appeal_of_a_resolved_case_escalates_and_a_late_one_changes_nothing(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id))
    routing.acknowledge(case_id, STAFF)
    routing.resolve(case_id, STAFF, lambda case: "Repaired.")
    routing.take(intake_event("CaseAppealed", case_id, {}), Tracking("intake", 3))
    case = routing.case(case_id)
    assert (case.status, case.office_id) == ("escalated", "district-ombudsman-1201")
    before = kinds(routing, case_id)
    routing.take(intake_event("CaseAppealed", case_id, {}), Tracking("intake", 4))
    assert kinds(routing, case_id) == before
    # Not even its tracking: the message was not acted on.
    assert routing.recorder.max_tracking_id("intake") == 3


def test_a_batch_acts_on_each_case_as_the_events_before_it_left_it(routing):
    """One transaction for a batch of intake's events: a case submitted and withdrawn in
    the same batch is routed, then withdrawn; one the batch speaks of before it is routed
    waits, not even tracked, and the rest is recorded."""
    withdrawn, early, answered = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    routing.take(submitted(answered))
    routing.acknowledge(answered, STAFF)
    routing.request_information(answered, STAFF, lambda case: "Which village?", now=T0)
    waiting = routing.take_all([
        (submitted(withdrawn), None),
        (intake_event("CaseWithdrawn", early, {}), Tracking("intake", 7)),
        (intake_event("CaseWithdrawn", withdrawn, {}), None),
        (intake_event("InformationProvided", answered, {"answers_request": True},
                      at=T0 + timedelta(hours=1)), Tracking("intake", 6)),
    ])
    assert [(tracking, str(why)) for tracking, why in waiting] == [
        (Tracking("intake", 7), "CaseWithdrawn before the case was routed")]
    assert kinds(routing, withdrawn) == ["CaseRouted", "WithdrawalRecorded"]
    assert routing.case(answered).status == "acknowledged"
    assert routing.recorder.max_tracking_id("intake") == 6  # not the one that waits

    routing.take_all([(submitted(early), None)])
    routing.take_all([(intake_event("CaseWithdrawn", early, {}), Tracking("intake", 7))])
    assert routing.case(early).status == "withdrawn"


def test_a_batch_that_fails_records_nothing_of_it(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id))
    with pytest.raises(KeyError):
        routing.take_all([(intake_event("CaseWithdrawn", case_id, {}), None),
                          (submitted(uuid.uuid4(), category="no-such-category"), None)])
    assert routing.case(case_id).status == "routed"


def test_satisfied_feedback_closes_and_withdrawal_ends_a_case(routing):
    closed, withdrawn = uuid.uuid4(), uuid.uuid4()
    for case_id in (closed, withdrawn):
        routing.take(submitted(case_id))
    routing.acknowledge(closed, STAFF)
    routing.resolve(closed, STAFF, lambda case: "Done.")
    routing.take(intake_event("FeedbackReceived", closed, {"satisfied": True}))
    routing.take(intake_event("CaseWithdrawn", withdrawn, {}))
    assert routing.case(closed).status == "closed"
    assert routing.case(withdrawn).status == "withdrawn"


def test_the_office_works_a_case_to_the_ombudsmans_closing(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id))
    routing.assign(case_id, STAFF, "sokha")
    routing.add_note(case_id, STAFF, "Called the commune chief.")
    routing.transfer(case_id, STAFF, "owso-1202", "the road is in Chamkar Mon", now=T0)
    colleague = Principal(role="staff", id="bopha", office_id="owso-1202")
    case = routing.escalate(case_id, colleague, "beyond what the office can settle", now=T0)
    assert (case.status, case.office_id, case.assignee) == (
        "escalated", "district-ombudsman-1202", None)
    ombudsman = Principal(role="ombudsman", id="dara", office_id="district-ombudsman-1202")
    routing.record_findings(case_id, ombudsman, "The road was never repaired.", "Repair it.")
    assert routing.close_case(case_id, ombudsman).status == "closed"
    assert kinds(routing, case_id) == [
        "CaseRouted", "CaseAssigned", "CaseNoteAdded", "CaseTransferred", "CaseEscalated",
        "OmbudsmanFindingsRecorded", "CaseClosed"]


def test_only_the_roles_an_action_allows_at_the_cases_office_may_act(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id))
    elsewhere = Principal(role="staff", id="kosal", office_id="owso-1202")
    with pytest.raises(NotAllowed, match="only the staff or ombudsman of owso-1201"):
        routing.acknowledge(case_id, elsewhere)
    with pytest.raises(NotAllowed, match="only the ombudsman of owso-1201"):
        routing.close_case(case_id, STAFF)
    with pytest.raises(InvalidTransition, match="acknowledge the case before"):
        routing.resolve(case_id, STAFF, lambda case: "Done.")
    with pytest.raises(UnknownCase):
        routing.acknowledge(uuid.uuid4(), STAFF)
    with pytest.raises(UnknownCase):
        routing.acknowledge("not a case id", STAFF)
    assert kinds(routing, case_id) == ["CaseRouted"]


def test_a_command_on_a_case_changed_meanwhile_collides_unless_it_was_only_read(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id))

    readings = []

    def read_meanwhile(case):
        if not readings:  # an auditor opens the file while the office writes its note
            readings.append(routing.open_file(routing.case(case_id), AUDITOR))
        case.add_note("seen", by=STAFF.id)

    routing.act(case_id, STAFF, "note", read_meanwhile)
    assert kinds(routing, case_id) == ["CaseRouted", "CaseFileOpened", "CaseNoteAdded"]

    def acknowledged_meanwhile(case):
        routing.acknowledge(case_id, STAFF)
        case.add_note("too late", by=STAFF.id)

    with pytest.raises(Collided, match="reload it and try again"):
        routing.act(case_id, STAFF, "note", acknowledged_meanwhile)


def test_reading_a_case_file_is_recorded_for_those_who_may_read_it(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id))
    with pytest.raises(NotAllowed, match="auditors and admins may read"):
        routing.readable(case_id, Principal(role="staff", id="kosal", office_id="owso-1202"))
    case = routing.open_file(routing.readable(case_id, AUDITOR), AUDITOR)
    assert case.history[-1]["summary"].startswith("case file opened by")
    assert kinds(routing, case_id) == ["CaseRouted", "CaseFileOpened"]


def test_the_words_for_the_citizen_are_a_sensitive_cases_only(routing):
    plain = uuid.uuid4()
    routing.take(submitted(plain))
    assert routing.words_for_citizen(str(plain)) is None
    assert routing.words_for_citizen(str(uuid.uuid4())) is None
    assert routing.words_for_citizen("no id") is None


def test_the_sweep_warns_then_breaches_and_escalates(routing):
    case_id = uuid.uuid4()
    routing.take(submitted(case_id))
    routing.check_deadlines([case_id], T0 + timedelta(hours=1))
    assert kinds(routing, case_id)[-1] == "SlaWarning"
    routing.check_deadlines([case_id], T0 + timedelta(hours=2))
    assert kinds(routing, case_id)[-2:] == ["SlaBreached", "CaseEscalated"]
    assert routing.case(case_id).status == "escalated"


def test_a_case_recorded_at_a_desk_about_that_office_goes_above_it(routing):
    case_id, other = uuid.uuid4(), uuid.uuid4()
    routing.take(submitted(case_id, channel="office-desk", recorded_by_office=OFFICE,
                           about_recording_office=True))
    case = routing.case(case_id)
    assert (case.office_id, case.excluded_office) == ("district-ombudsman-1201", OFFICE)
    # Recorded at the desk, but about someone else: routed as any other.
    routing.take(submitted(other, channel="office-desk", recorded_by_office=OFFICE,
                           about_recording_office=False))
    assert (routing.case(other).office_id, routing.case(other).excluded_office) == (OFFICE, None)
