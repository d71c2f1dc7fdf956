"""The entry a service gives for one event of a case's history: `by` to resolve, or the
actor outright; words and notes withheld."""

from datetime import UTC, datetime
from types import SimpleNamespace
from uuid import uuid4

from shared.history import entry


class NoteAdded(SimpleNamespace):
    pass


def event(**fields):
    return NoteAdded(originator_id=uuid4(), originator_version=3, context={"a": 1},
                     timestamp=datetime(2026, 11, 3, 2, tzinfo=UTC), **fields)


def test_an_entry_names_by_for_reporting_or_the_actor_given_and_withholds_words():
    noted = event(by="sok.dara", text="called Sopheap on 012 777 888", office_id="x")
    found = entry("routing", 12, noted, state={"status": "routed"})
    assert found["by"] == "sok.dara" and "actor" not in found
    assert found["data"] == {"office_id": "x", "text": "withheld"}
    assert found["occurred_at"] == "2026-11-03T02:00:00+00:00"
    assert (found["store"], found["position"], found["sequence"], found["event_type"]) == \
        ("routing", 12, 3, "NoteAdded")
    given = entry("intake", 1, event(), state={}, actor={"role": "citizen"})
    assert given["actor"] == {"role": "citizen"} and "by" not in given
    assert entry("intake", 1, event(), state={})["actor"] == {"role": "system"}
