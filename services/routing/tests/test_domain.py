import uuid
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.application import Application

from services.routing.domain import Case, InvalidTransition, choose_office
from shared.categories import Category, categories
from shared.offices import describe, ombudsman_above

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

# One place of each kind of unit: a Phnom Penh khan and sangkat, a krong (municipality)
# and its sangkat, a srok (district) and its khum (commune), and a second province.
PLACES = {
    "sangkat in a Phnom Penh khan": "120101",
    "sangkat in Krong Siem Reap": "171001",
    "khum in Srok Angkor Chum": "170101",
    "khum in Banan, Battambang": "020101",
}


def expected_office(category: Category, commune: str) -> str:
    district, province = commune[:4], commune[:2]
    if category.sensitive:
        return {"province": f"provincial-ombudsman-{province}"}.get(
            category.level, f"district-ombudsman-{district}")
    return {"commune": f"commune-{commune}", "district": f"owso-{district}",
            "province": f"owsu-{province}"}[category.level]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("code", sorted(categories()))
def test_every_category_at_every_kind_of_place_goes_to_its_office(code, place):
    category = categories()[code]
    office, reason = choose_office(category, PLACES[place])
    assert office == expected_office(category, PLACES[place])
    assert reason == ("sensitive" if category.sensitive else "category-level")
    assert describe(office) is not None


@pytest.mark.parametrize(("level", "sensitive", "office"), [
    ("commune", False, "commune-120101"), ("district", False, "owso-1201"),
    ("province", False, "owsu-12"), ("commune", True, "district-ombudsman-1201"),
    ("district", True, "district-ombudsman-1201"), ("province", True, "provincial-ombudsman-12"),
])
def test_the_category_level_and_sensitivity_choose_the_office(level, sensitive, office):
    assert choose_office(Category("x", "X", "X", level, sensitive), "120101")[0] == office


@pytest.mark.parametrize(("office", "above"), [
    ("commune-120101", "district-ombudsman-1201"), ("owso-1201", "district-ombudsman-1201"),
    ("owsu-12", "provincial-ombudsman-12"),
    ("district-ombudsman-1201", "provincial-ombudsman-12"),
    ("provincial-ombudsman-12", "national-ombudsman"), ("national-ombudsman", None),
])
def test_the_escalation_ladder(office, above):
    assert ombudsman_above(office) == above


def routed(policies, category="water-supply", commune="120101", redirect=lambda o: o):
    return Case.route(uuid.uuid4(), "K7M2P-9QX4R", commune, "complaint",
                      categories()[category], T0, policies, redirect)


def names(case):
    return [type(e).__name__ for e in case.collect_events()]


def test_a_routed_case_carries_its_office_deadlines_and_context(policies):
    case = routed(policies, "construction-permits")
    assert case.office_id == "owso-1201" and case.status == "routed"
    assert case.acknowledge_due == T0 + timedelta(hours=2)
    assert case.resolve_due == T0 + timedelta(days=10)
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.save(case)
    event = next(iter(app.events.get(case.id)))
    assert type(event).__name__ == "CaseRouted"
    assert event.context == {"tracking_code": "K7M2P-9QX4R", "commune": "120101",
                             "office_id": "owso-1201"}
    assert app.repository.get(case.id).resolve_due == case.resolve_due


def test_a_merged_office_receives_the_cases_of_the_office_it_absorbed(policies):
    case = routed(policies, redirect=lambda o: "commune-120109" if o == "commune-120101" else o)
    assert case.office_id == "commune-120109"


def test_the_whole_road_from_routing_to_closing(policies):
    case = routed(policies)
    case.acknowledge(by="staff-1")
    case.request_information("Which street?", by="staff-1", now=T0 + timedelta(hours=1))
    assert case.status == "waiting-for-citizen" and case.deadlines == {}
    # Ten days of waiting for the citizen do not count against the office.
    assert case.information_provided(now=T0 + timedelta(days=10, hours=1))
    assert case.resolve_due == T0 + timedelta(days=20)
    case.resolve("Pipe repaired", by="staff-1")
    case.appeal(now=T0 + timedelta(days=21), policies=policies)
    assert (case.status, case.office_id) == ("escalated", "district-ombudsman-1201")
    assert case.resolve_due == T0 + timedelta(days=26)
    case.record_findings("Repair was partial", "Finish it within a week", by="ombudsman-1")
    case.close(by="ombudsman-1")
    assert names(case) == ["CaseRouted", "CaseAcknowledged", "InformationRequested",
                           "ClockRestarted", "CaseResolved", "CaseEscalated",
                           "OmbudsmanFindingsRecorded", "CaseClosed"]


@pytest.mark.parametrize(("steps", "command"), [
    ([], lambda c: c.resolve("done", by="s")),
    ([], lambda c: c.request_information("?", by="s", now=T0)),
    ([lambda c: c.acknowledge(by="s")], lambda c: c.acknowledge(by="s")),
    ([], lambda c: c.record_findings("f", "r", by="o")),
    ([], lambda c: c.close(by="o")),
    ([lambda c: c.acknowledge(by="s"), lambda c: c.resolve("done", by="s")],
     lambda c: c.add_note("late", by="s") or c.transfer("owso-1202", "x", by="s", now=T0,
                                                        policies=None)),
])
def test_invalid_transitions_are_refused_with_a_reason(policies, steps, command):
    case = routed(policies)
    for step in steps:
        step(case)
    with pytest.raises(InvalidTransition) as refusal:
        command(case)
    assert str(refusal.value)


def test_the_fourth_transfer_is_refused_and_the_office_escalates_instead(policies):
    case = routed(policies, "construction-permits")
    for office in ("owso-1202", "owso-1203", "owso-1204"):
        case.transfer(office, "not ours", by="s", now=T0, policies=policies)
    assert (case.transfers, case.office_id) == (3, "owso-1204")
    assert "transfer" not in case.possible_actions("staff")
    with pytest.raises(InvalidTransition, match="transferred 3 times, the most allowed; "
                                                "escalate it to the ombudsman instead"):
        case.transfer("owso-1205", "not ours either", by="s", now=T0, policies=policies)
    assert (case.status, case.office_id) == ("routed", "owso-1204")
    case.escalate_by_office("three offices say it is not theirs", by="s",
                            now=T0 + timedelta(hours=1), policies=policies)
    assert (case.status, case.office_id) == ("escalated", "district-ombudsman-1204")
    assert case.history[-1]["event_type"] == "CaseEscalated"
    assert case.escalations == [{"from_office_id": "owso-1204",
                                 "office_id": "district-ombudsman-1204", "reason": "office",
                                 "explanation": "three offices say it is not theirs",
                                 "by": "s", "at": case.escalations[0]["at"]}]
    assert replayed(case).escalations == case.escalations


def test_a_transfer_to_an_ombudsman_is_refused(policies):
    case = routed(policies)
    with pytest.raises(InvalidTransition, match="use escalate"):
        case.transfer("district-ombudsman-1201", "too hard", by="s", now=T0, policies=policies)
    assert (case.status, case.office_id, case.transfers) == ("routed", "commune-120101", 0)


def test_a_transfer_gives_time_to_acknowledge_but_never_more_time_to_resolve(policies):
    case = routed(policies)
    resolve_due = case.resolve_due
    case.acknowledge(by="s")
    later = T0 + timedelta(days=9, hours=23)
    case.transfer("commune-120102", "not ours", by="s", now=later, policies=policies)
    assert case.resolve_due == resolve_due == T0 + timedelta(days=10)
    # Its own time to acknowledge, but no later than the case must be resolved.
    assert case.acknowledge_due == resolve_due
    assert replayed(case).resolve_due == resolve_due
    case.check_deadlines(resolve_due, policies)
    assert (case.status, case.office_id) == ("escalated", "district-ombudsman-1201")


def test_a_transfer_keeps_the_time_the_citizen_took(policies):
    case = routed(policies)
    case.acknowledge(by="s")
    case.request_information("Which street?", by="s", now=T0 + timedelta(hours=1))
    case.information_provided(now=T0 + timedelta(days=3, hours=1))
    case.transfer("commune-120102", "not ours", by="s", now=T0 + timedelta(days=4),
                  policies=policies)
    assert case.resolve_due == T0 + timedelta(days=13)
    assert case.acknowledge_due == T0 + timedelta(days=4, hours=2)


def test_escalation_by_the_office_needs_an_open_case_at_a_service_office(policies):
    case = routed(policies)
    case.acknowledge(by="s")
    case.resolve("done", by="s")
    with pytest.raises(InvalidTransition):
        case.escalate_by_office("why", by="s", now=T0, policies=policies)
    at_ombudsman = routed(policies, "gender-based-violence")
    assert "escalate" not in at_ombudsman.possible_actions("staff")


def evaluation(policies):
    return Case.route(uuid.uuid4(), "K7M2P-9QX4R", "120101", "evaluation",
                      categories()["water-supply"], T0, policies)


def test_an_evaluation_has_no_deadlines_and_never_escalates(policies):
    case = evaluation(policies)
    assert case.deadlines == {} and case.deadline_states() == []
    case.check_deadlines(T0 + timedelta(days=365), policies)
    assert (case.status, case.office_id) == ("routed", "commune-120101")
    assert names(case) == ["CaseRouted"]
    assert "escalate" not in case.possible_actions("staff")
    case.transfer("commune-120102", "not ours", by="s", now=T0, policies=policies)
    assert case.deadlines == {}


def test_the_office_may_answer_an_evaluation_straight_away(policies):
    case = evaluation(policies)
    assert "resolve" in case.possible_actions("staff")
    case.resolve("Thank you for your rating", by="s")
    assert case.status == "resolved"
    # A citizen unhappy with the answer may still appeal: the ombudsman sets no deadline.
    case.appeal(now=T0, policies=policies)
    assert case.status == "escalated" and case.deadlines == {}


def test_acknowledging_records_the_deadlines_left(policies):
    case = routed(policies)
    case.acknowledge(by="s")
    acknowledged = case.collect_events()[-1]
    assert acknowledged.deadlines == {"resolve": {"due": T0 + timedelta(days=10),
                                                  "warn": T0 + timedelta(days=5),
                                                  "calendar": "24x7"}}


def test_deadlines_warn_then_breach_and_escalate_once(policies):
    case = routed(policies)
    case.check_deadlines(T0 + timedelta(minutes=59), policies)
    assert names(case) == ["CaseRouted"]
    case.check_deadlines(T0 + timedelta(hours=1), policies)  # half of two hours
    assert names(case) == ["SlaWarning"]
    case.check_deadlines(T0 + timedelta(hours=1, minutes=30), policies)
    assert names(case) == []  # warned once only
    case.check_deadlines(T0 + timedelta(hours=2), policies)
    assert names(case) == ["SlaBreached", "CaseEscalated"]
    assert case.office_id == "district-ombudsman-1201"


def test_an_ombudsman_who_misses_the_deadline_passes_it_up_to_national(policies):
    case = routed(policies)
    now = T0
    for expected in ("district-ombudsman-1201", "provincial-ombudsman-12", "national-ombudsman"):
        now = case.deadlines["acknowledge"]["due"]
        case.check_deadlines(now, policies)
        assert case.office_id == expected
    case.collect_events()
    case.check_deadlines(case.deadlines["acknowledge"]["due"], policies)
    assert names(case) == ["SlaWarning", "SlaBreached"]  # national is the last level
    assert case.office_id == "national-ombudsman"


def test_satisfied_feedback_closes_and_withdrawal_ends_the_case(policies):
    case = routed(policies)
    case.acknowledge(by="s")
    case.resolve("done", by="s")
    case.feedback(satisfied=True)
    assert case.status == "closed"
    other = routed(policies)
    other.withdraw()
    other.withdraw()
    assert other.status == "withdrawn" and names(other) == ["CaseRouted", "WithdrawalRecorded"]


def replayed(case):
    """The case as its stored events give it back."""
    again = None
    for stored in case.collect_events():
        again = stored.mutate(again)
    return again


def test_the_case_file_record_comes_back_from_the_events_with_who_and_when(policies):
    case = Case.route(uuid.uuid4(), "K7M2P-9QX4R", "120101", "complaint",
                      categories()["water-supply"], T0, policies, language="en")
    case.acknowledge(by="dara")
    case.add_note("called the water company", by="dara")
    case.assign("sokha", by="dara")
    case.request_information("Which village?", by="sokha", now=T0 + timedelta(minutes=30))
    case.information_provided(now=T0 + timedelta(hours=1))
    case.resolve("Repaired the pipe", by="sokha")
    case.open_file(by="auditor-1", role="auditor", office_id=None)
    again = replayed(case)
    assert again.language == "en"
    assert again.assignee == "sokha"
    assert [(n["text"], n["by"]) for n in again.notes] == [("called the water company", "dara")]
    assert [(q["text"], q["by"]) for q in again.questions] == [("Which village?", "sokha")]
    assert again.resolved["text"] == "Repaired the pipe" and again.resolved["by"] == "sokha"
    assert [e["event_type"] for e in again.history] == [
        "CaseRouted", "CaseAcknowledged", "CaseNoteAdded", "CaseAssigned",
        "InformationRequested", "ClockRestarted", "CaseResolved", "CaseFileOpened"]
    assert all("called" not in e["summary"] for e in again.history), "summaries quote no one"
    assert {d["name"]: d["state"] for d in again.deadline_states()} == {
        "acknowledge": "met", "resolve": "met"}


def test_deadline_states_running_paused_and_breached(policies):
    case = routed(policies)
    assert [d["state"] for d in case.deadline_states()] == ["running", "running"]
    case.acknowledge(by="dara")
    case.request_information("?", by="dara", now=T0 + timedelta(minutes=5))
    assert {d["name"]: d["state"] for d in case.deadline_states()} == {
        "acknowledge": "met", "resolve": "paused"}
    late = routed(policies)
    late.check_deadlines(T0 + timedelta(hours=3), policies)
    assert late.office_id == "district-ombudsman-1201"
    assert all(d["state"] == "running" for d in late.deadline_states()), "the ombudsman's own"
    assert late.outcomes == {}


def test_what_each_reader_may_do_follows_the_state(policies):
    case = routed(policies)
    assert case.possible_actions("staff") == ["acknowledge", "note", "assign", "transfer",
                                              "escalate"]
    assert case.possible_actions("auditor") == []
    case.acknowledge(by="dara")
    assert case.possible_actions("staff") == ["request-info", "note", "assign", "transfer",
                                              "escalate", "resolve"]
    case.resolve("done", by="dara")
    assert case.possible_actions("staff") == ["note"]


def test_a_transfer_leaves_the_assignee_behind(policies):
    case = routed(policies)
    case.assign("dara", by="dara")
    case.transfer("commune-120102", "not ours", by="dara", now=T0, policies=policies)
    assert case.assignee is None
    assert case.transfer_log[0]["reason"] == "not ours"
    assert replayed(case).assignee is None


# -- a case recorded at an office desk about that office's own conduct ---------------
def about_its_office(policies, category="water-supply", office="commune-120101"):
    return Case.route(uuid.uuid4(), "K7M2P-9QX4R", "120101", "complaint",
                      categories()[category], T0, policies, excluded_office=office)


def test_a_case_about_the_recording_office_goes_to_the_office_above_it(policies):
    case = about_its_office(policies)
    assert (case.office_id, case.reason, case.status) == (
        "district-ombudsman-1201", "about-recording-office", "escalated")
    assert replayed(case).excluded_office == "commune-120101"
    district = about_its_office(policies, "construction-permits", "owso-1201")
    assert district.office_id == "district-ombudsman-1201"


def test_a_case_about_another_office_than_its_own_is_routed_as_usual(policies):
    case = about_its_office(policies, "construction-permits", office="commune-120101")
    assert (case.office_id, case.reason) == ("owso-1201", "category-level")


def test_a_case_about_the_recording_office_is_never_transferred_to_it(policies):
    case = about_its_office(policies, "construction-permits", office="owso-1202")
    with pytest.raises(InvalidTransition, match="about that office's own conduct"):
        case.transfer("owso-1202", "theirs", by="s", now=T0, policies=policies)
    assert (case.office_id, case.transfers) == ("owso-1201", 0)
    case.transfer("owso-1203", "theirs", by="s", now=T0, policies=policies)
    assert case.office_id == "owso-1203"


def test_an_ombudsman_recording_a_case_about_itself_is_passed_over_when_escalating(policies):
    case = about_its_office(policies, office="district-ombudsman-1201")
    assert case.office_id == "commune-120101"
    case.check_deadlines(T0 + timedelta(days=60), policies)
    assert case.office_id == "provincial-ombudsman-12"
