"""A case counts as sensitive when an event says so, or carries no category (the
summary then counts it under `sensitive`, as it does a sensitive category)."""

from datetime import UTC, datetime
from uuid import uuid4

from services.reporting.counts import _case_row, _merge_cases


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
