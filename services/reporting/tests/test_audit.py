"""A case's history merged from the services' parts: the same history whatever order
the parts and their entries come in; the state folded from what each service knows;
actors resolved; cut at a time."""

import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from services.reporting.audit import _in_words, as_text, merge, references

CASE = "5b7e0d3c-2f43-4a4e-9d55-000000000001"
STAFF = "1f0c5e0a-0000-4000-8000-000000000002"
OFFICE = "commune-120101"


def at(minute: int, second: int = 0) -> str:
    return datetime(2026, 11, 3, 2, minute, second, tzinfo=UTC).isoformat()


def entry(store: str, position: int, when: str, kind: str, state: dict, **who) -> dict:
    return {"occurred_at": when, "store": store, "position": position, "stream_id": CASE,
            "sequence": position, "event_type": kind, **(who or {"actor": {"role": "system"}}),
            "data": {}, "state": state}


ROUTED = {"status": "routed", "office_id": OFFICE, "acknowledge_due": at(50),
          "resolve_due": at(59)}
PARTS = {
    "intake": [
        entry("intake", 1, at(0), "CaseSubmitted", {"personal_data": "sealed",
                                                    "status": "submitted"},
              actor={"role": "citizen"}),
        entry("intake", 7, at(5), "CaseWithdrawn", {"personal_data": "sealed",
                                                    "status": "withdrawn"},
              actor={"role": "citizen"}),
        entry("intake", 9, at(6), "PersonalDataErased", {"personal_data": "erased"},
              by="operator"),
    ],
    "routing": [
        # At the same instant as the submission: intake's comes first.
        entry("routing", 3, at(0), "CaseRouted", ROUTED),
        entry("routing", 4, at(2), "CaseAcknowledged", {**ROUTED, "status": "acknowledged"},
              by=STAFF),
        entry("routing", 8, at(5, 30), "CaseClosed", {**ROUTED, "status": "closed"},
              by="sok.dara"),
    ],
    "notifications": [
        entry("notifications", 2, at(1), "NotificationSent", {}),
    ],
}
KNOWN = {STAFF: {"id": STAFF, "role": "staff", "office_id": OFFICE},
         "sok.dara": {"username": "sok.dara", "name": "Sok Dara", "role": "staff",
                      "office_id": OFFICE}}


def merged(parts=PARTS, as_of=None):
    return merge("12345-67890", CASE, parts, KNOWN, as_of)


def test_the_history_is_the_same_whatever_order_the_parts_and_entries_come_in():
    expected = merged()
    for seed in range(20):
        shuffle = random.Random(seed)
        stores = shuffle.sample(list(PARTS), len(PARTS))
        parts = {store: shuffle.sample(PARTS[store], len(PARTS[store])) for store in stores}
        assert merged(parts) == expected


def test_events_in_time_order_intake_first_at_the_same_instant():
    kinds = [(e["store"], e["event_type"]) for e in merged()["events"]]
    assert kinds == [("intake", "CaseSubmitted"), ("routing", "CaseRouted"),
                     ("notifications", "NotificationSent"), ("routing", "CaseAcknowledged"),
                     ("intake", "CaseWithdrawn"), ("routing", "CaseClosed"),
                     ("intake", "PersonalDataErased")]


def test_the_state_folds_what_each_service_knows_and_a_final_status_stays():
    events = merged()["events"]
    assert events[0]["state"] == {"status": "submitted", "office_id": None,
                                  "acknowledge_due": None, "resolve_due": None,
                                  "personal_data": "sealed"}
    assert events[1]["state"]["status"] == "routed" and events[1]["state"]["personal_data"] \
        == "sealed"
    assert events[2]["state"] == events[1]["state"]  # notifications know nothing of it
    # Withdrawn is final: routing's closing after it does not change the status.
    assert [e["state"]["status"] for e in events[4:]] == ["withdrawn"] * 3
    assert merged()["state"] == {**ROUTED, "status": "withdrawn", "personal_data": "erased"}


def test_actors_are_resolved_from_the_references_the_parts_give():
    assert references(PARTS) == {"operator", STAFF, "sok.dara"}
    actors = {e["event_type"]: e["actor"] for e in merged()["events"]}
    assert actors["CaseSubmitted"] == {"role": "citizen"}
    assert actors["CaseAcknowledged"] == {"role": "staff", "office_id": OFFICE,
                                          "principal_id": STAFF}
    assert actors["CaseClosed"] == {"role": "staff", "office_id": OFFICE,
                                    "username": "sok.dara", "name": "Sok Dara"}
    assert actors["PersonalDataErased"] == {"role": "operator"}
    assert actors["NotificationSent"] == {"role": "system"}
    stranger = merge("12345-67890", CASE, {"routing": [
        entry("routing", 1, at(0), "CaseRouted", ROUTED, by="who-knows")]}, {})
    assert stranger["events"][0]["actor"] == {"role": "unknown", "principal_id": "who-knows"}


def test_the_history_is_cut_at_a_time():
    then = merged(as_of=datetime(2026, 11, 3, 9, 2, tzinfo=ZoneInfo("Asia/Phnom_Penh")))
    assert [e["event_type"] for e in then["events"]][-1] == "CaseAcknowledged"
    assert then["as_of"] == at(2) and then["state"]["status"] == "acknowledged"
    before = merged(as_of=datetime(2026, 11, 2, tzinfo=UTC))
    assert before["events"] == [] and before["state"] is None
    assert "nothing had happened yet" in as_text(before)
    assert merge("12345-67890", CASE, {"intake": [], "routing": []}, {}) is None


def test_where_the_case_went_and_why_is_said_in_words_for_each_kind_of_event():
    said = {kind: _in_words({"event_type": kind, "data": data}) for kind, data in [
        ("CaseRouted", {"office_id": OFFICE}),
        ("CaseTransferred", {"from_office_id": OFFICE, "office_id": "commune-120102",
                             "reason": "wrong commune"}),
        ("CaseEscalated", {"from_office_id": OFFICE, "office_id": "owso-1201",
                           "reason": "appeal"}),
        ("AttachmentAdded", {"kind": "photo", "size": 2048}),
        ("SlaWarning", {"deadline": "acknowledge"}),
        ("SlaBreached", {"deadline": "resolve"}),
        ("CaseAcknowledged", {}),
    ]}
    assert said["CaseRouted"].startswith("routed to ") and OFFICE in said["CaseRouted"]
    assert said["CaseTransferred"].endswith(': "wrong commune"')
    assert said["CaseEscalated"].endswith(": the citizen appealed")
    assert said["AttachmentAdded"] == "a photo of 2048 bytes added"
    assert said["SlaWarning"] == "the deadline to acknowledge is near"
    assert said["SlaBreached"] == "the deadline to resolve passed"
    assert said["CaseAcknowledged"] == ""
    # A sensitive case's transfer carries no reason; a deadline event without its name
    # (stored before it had one) says nothing.
    assert _in_words({"event_type": "CaseTransferred", "data": {}}).endswith(
        "reason withheld (a sensitive case)")
    assert _in_words({"event_type": "SlaBreached", "data": {}}) == ""
