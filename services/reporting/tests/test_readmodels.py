"""The reports' read model: a case counts as sensitive when an event says so, or carries
no category (the summary then counts it under `sensitive`, as it does a sensitive
category); the rows are the same whatever order the same events arrive in."""

import random
from datetime import UTC, datetime
from uuid import uuid4

from services.reporting.readmodels import CASE_UPSERT, _case_row, _merge_cases, rows


def submitted(**data):
    return {"event_type": "CaseSubmitted", "event_id": uuid4(), "case_id": uuid4(),
            "occurred_at": datetime(2026, 11, 3, tzinfo=UTC), "office_id": None,
            "location": {"province": "12", "district": "1201", "commune": "120101"},
            "data": {"type": "complaint", "channel": "app", **data}}


def test_a_case_flagged_sensitive_or_without_category_is_kept_as_such():
    flagged = _case_row(submitted(sensitive=True))
    assert flagged["sensitive"] is True and flagged["category"] is None
    plain = _case_row(submitted(category="water-supply"))
    assert plain["sensitive"] is False and plain["category"] == "water-supply"
    # Once an event of the case says sensitive, it stays so whatever comes after.
    assert _merge_cases(flagged, {**plain, "case_id": flagged["case_id"]})["sensitive"] is True


# -- the same rows whatever order the events arrive in ------------------------------------
CASE = uuid4()
OFFICE, OTHER = "commune-120101", "owso-1201"


def about(kind: str, at: int, at_office: str | None = OFFICE, **data) -> dict:
    return {"event_type": kind, "event_id": uuid4(), "case_id": CASE,
            "occurred_at": datetime(2026, 11, 3, at, tzinfo=UTC), "office_id": at_office,
            "location": {"province": "12", "district": "1201", "commune": "120101"},
            "data": data}


def one_case() -> list[dict]:
    due = {"acknowledge_due": datetime(2026, 11, 5, tzinfo=UTC),
           "resolve_due": datetime(2026, 11, 20, tzinfo=UTC)}
    return [
        {**submitted(category="water-supply"), "case_id": CASE,
         "occurred_at": datetime(2026, 11, 3, 1, tzinfo=UTC)},
        about("CaseRouted", 2, None, office_id=OFFICE, **due),
        about("CaseAcknowledged", 3),
        about("SlaBreached", 4, deadline="resolve"),
        about("CaseEscalated", 5, office_id=OTHER, from_office_id=OFFICE, reason="breach", **due),
        about("CaseResolved", 6, OTHER),
        about("FeedbackReceived", 7, OTHER, satisfied=False, rating=2),
        about("CaseAppealed", 8, OTHER),
        about("OmbudsmanFindingsRecorded", 9, OTHER),
        about("CaseClosed", 10, OTHER),
        about("NotificationSent", 11, OTHER),
    ]


def _written(events: list[dict]) -> dict:
    """What a batch writes, each statement's rows as a set (the table has no order)."""
    return {statement: sorted(map(repr, found))
            for statement, found in rows([("test", e) for e in events])}


def test_the_counts_are_the_same_rows_whatever_order_the_events_arrive_in():
    events = one_case()
    expected = _written(events)
    orders = [list(reversed(events)), events[1::2] + events[::2]]
    orders += [random.Random(seed).sample(events, len(events)) for seed in range(20)]
    for order in orders:
        assert _written(order) == expected
    cases = dict(rows([("test", e) for e in events]))[CASE_UPSERT]
    assert cases[0]["final_status"] == "closed" and cases[0]["office_id"] == OTHER
    assert cases[0]["first_office_id"] == OFFICE


def test_events_in_batches_of_any_size_merge_to_the_same_case():
    """A live model applies events one at a time, a rebuild thousands at once: merging
    the rows of single events gives the row of the whole batch."""
    events = random.Random(7).sample(one_case(), len(one_case()))
    whole = dict(rows([("test", e) for e in events]))[CASE_UPSERT][0]
    merged = None
    for event in events:
        if event["event_type"] == "NotificationSent":
            continue
        row = _case_row(event)
        merged = row if merged is None else _merge_cases(merged, row)
    assert merged == whole
