import json
import uuid
from datetime import UTC, datetime

import pytest

from services.routing.deadlines import policies_from
from services.routing.domain import Case
from shared.categories import categories
from shared.events import DATA_SCHEMAS, MalformedEvent, public_event, read_event, routing_key


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
    assert len(DATA_SCHEMAS) == 18

