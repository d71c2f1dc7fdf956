"""Reporting's use cases without a database or the other services: which month a public
report may cover, which figures each caller gets and for which days, what intake is
asked to count, and a case's history refused while a service's part is missing."""

from contextlib import contextmanager
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from services.reporting import application
from services.reporting.application import NotPublic, PartsMissing
from shared.principals import Principal
from shared.tracking import case_id_for, format_tracking_code

# 10:00 in Phnom Penh on 2026-12-04 (UTC+7).
NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
OFFICE = "commune-120101"
AUDITOR = Principal(role="auditor", id="a1")
STAFF = Principal(role="staff", id="s1", office_id=OFFICE)
CITIZEN = Principal(role="citizen", id="c1")


class Database:
    """Counts the transactions a use case opens; nothing is read from it."""

    def __init__(self):
        self.transactions = 0

    @contextmanager
    def transaction(self):
        self.transactions += 1
        yield "cursor"


@pytest.fixture(autouse=True)
def calendar(monkeypatch):
    """Reporting's calendar at NOW, moved on by `days` outside production."""
    now = {"at": NOW, "env": "development", "days": 0}
    monkeypatch.setattr(application.clock, "now", lambda: now["at"])
    monkeypatch.setattr(application, "settings",
                        lambda: SimpleNamespace(env=now["env"], reports_clock_days=now["days"]))
    return now


@pytest.fixture
def read(monkeypatch):
    """What the summary module was asked to read, by name, with its arguments."""
    asked = {}

    def reader(name):
        def read(cursor, *args, **kwargs):
            asked[name] = (args, kwargs)
            return {"read": name}
        return read

    for name in ("summary", "published", "scorecards"):
        monkeypatch.setattr(application.report, name, reader(name))
    return asked


def gender_counts(asked: list):
    return lambda filters: asked.append(filters) or [{"gender": "female", "cases": 7}]


def refusal(query: dict) -> dict:
    with pytest.raises(NotPublic) as refused:
        application.public_month(query)
    return refused.value.errors


# -- the calendar ------------------------------------------------------------------------
def test_today_is_cambodias_and_moves_on_only_outside_production(calendar):
    calendar["at"] = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)  # 01:00 on the 5th there
    assert application.today() == date(2026, 12, 5)
    calendar["days"] = 30
    assert application.today() == date(2027, 1, 4)
    calendar["env"] = "production"
    assert application.today() == date(2026, 12, 5)


def test_the_public_month_is_the_last_ended_one_by_default():
    assert application.public_month({}) == (date(2026, 11, 1), date(2026, 12, 1))


def test_a_public_month_given_by_its_first_day_ends_on_the_next_first():
    assert application.public_month({"from_": date(2025, 12, 1)}) == \
        (date(2025, 12, 1), date(2026, 1, 1))
    assert application.public_month({"from_": date(2026, 10, 1), "to": date(2026, 11, 1),
                                     "period": "month", "district": "1201"}) == \
        (date(2026, 10, 1), date(2026, 11, 1))


def test_a_public_month_is_refused_unless_whole_ended_one_place_and_by_month():
    assert list(refusal({"from_": date(2026, 10, 2)})) == ["from"]
    assert list(refusal({"to": date(2026, 11, 1)})) == ["from"]
    assert "2026-11-01" in refusal({"from_": date(2026, 10, 1), "to": date(2026, 11, 2)})["to"][0]
    assert "not ended" in refusal({"from_": date(2026, 12, 1)})["to"][0]
    assert list(refusal({"from_": date(2026, 10, 1), "province": "12",
                         "office_id": OFFICE})) == ["office_id"]
    assert list(refusal({"from_": date(2026, 10, 1), "period": "week"})) == ["period"]


def test_the_month_under_way_reads_as_ended_once_the_calendar_moved_on(calendar):
    calendar["days"] = 28  # 2027-01-01 in Phnom Penh
    assert application.public_month({"from_": date(2026, 12, 1)}) == \
        (date(2026, 12, 1), date(2027, 1, 1))


# -- the summary -------------------------------------------------------------------------
def test_an_auditor_reads_the_whole_summary_for_the_days_asked(read):
    asked, db = [], Database()
    found = application.summary(db, AUDITOR, {"from_": date(2026, 12, 2), "period": "day",
                                              "office_id": OFFICE}, gender_counts(asked))
    assert found == {"read": "summary", "suppressed": False}
    (filters, period, gender_rows), _ = read["summary"]
    assert filters["from"].isoformat() == "2026-12-02T00:00:00+07:00"
    assert filters["to"] is None and filters["office_id"] == OFFICE
    assert period == "day" and gender_rows == [{"gender": "female", "cases": 7}]
    assert asked == [filters] and db.transactions == 1


def test_an_offices_staff_read_its_own_figures_from_the_months_start_to_tomorrow(read):
    asked = []
    found = application.summary(Database(), STAFF, {"office_id": OFFICE, "period": "month"},
                                gender_counts(asked))
    (start, end, _, sensitive), options = read["published"]
    assert (start.isoformat(), end.isoformat()) == \
        ("2026-12-01T00:00:00+07:00", "2026-12-05T00:00:00+07:00")
    assert options == {"area": "", "office": OFFICE, "label": "2026-12-01/2026-12-05",
                       "office_alone": True}
    assert asked == [{"from": start, "to": end, "office_id": OFFICE}]
    assert found["filters"] == {"from": "2026-12-01", "to": "2026-12-05", "office_id": OFFICE}
    assert found["period"] == "month" and isinstance(sensitive, list)


def test_anyone_else_reads_the_public_month_counted_over_every_office(read):
    asked = []
    for caller in (None, CITIZEN, Principal(role="staff", id="s2", office_id="other")):
        found = application.summary(Database(), caller, {"office_id": OFFICE}, gender_counts(asked))
        _, options = read["published"]
        assert options == {"area": "", "office": OFFICE, "label": "2026-11",
                           "office_alone": False}
        assert found["filters"] == {"from": "2026-11-01", "to": "2026-12-01",
                                    "office_id": OFFICE}
    # The whole month's gender table, whatever the office: one decision for every query.
    assert all(filters["office_id"] is None for filters in asked)


def test_staff_asking_for_an_area_get_its_public_figures(read):
    application.summary(Database(), STAFF, {"district": "1201"}, gender_counts([]))
    assert read["published"][1] == {"area": "1201", "office": "", "label": "2026-11",
                                    "office_alone": False}
    with pytest.raises(NotPublic):  # their office in an area: neither theirs nor public
        application.summary(Database(), STAFF, {"office_id": OFFICE, "district": "1201"},
                            gender_counts([]))


def test_a_public_summary_of_the_month_under_way_is_refused_before_anything_is_read(read):
    asked, db = [], Database()
    with pytest.raises(NotPublic):
        application.summary(db, None, {"from_": date(2026, 12, 1)}, gender_counts(asked))
    assert asked == [] and db.transactions == 0 and read == {}


# -- the scorecards ----------------------------------------------------------------------
def test_an_auditors_scorecards_are_whole_since_the_first_case_by_default(read):
    found = application.scorecards(Database(), AUDITOR, {"province": "12"}, gender_counts([]))
    (start, end, _, _), options = read["scorecards"]
    assert (start.date(), end.date()) == (date(2000, 1, 1), date(2026, 12, 5))
    assert options == {"area": "12", "whole": True}
    assert found["filters"] == {"from": "2000-01-01", "to": "2026-12-05", "province": "12"}


def test_public_scorecards_are_of_one_ended_month(read):
    application.scorecards(Database(), STAFF, {"district": "1201"}, gender_counts([]))
    (start, end, _, _), options = read["scorecards"]
    assert (start.date(), end.date()) == (date(2026, 11, 1), date(2026, 12, 1))
    assert options == {"area": "1201", "whole": False}
    with pytest.raises(NotPublic):
        application.scorecards(Database(), None, {"from_": date(2026, 11, 2)}, gender_counts([]))


def test_labels_name_every_province_with_its_districts_and_every_category():
    found = application.labels()
    assert found["provinces"] and all(p["districts"] for p in found["provinces"])
    assert {"code", "name_en", "name_km"} <= set(found["categories"][0])


# -- a case's history --------------------------------------------------------------------
CODE = format_tracking_code(123456)


def part(store: str) -> list[dict]:
    return [{"occurred_at": NOW.isoformat(), "store": store, "position": 1,
             "stream_id": str(case_id_for(CODE)), "sequence": 1, "event_type": "Seen",
             "actor": {"role": "system"}, "data": {}, "state": {}}]


def test_a_history_is_merged_from_every_services_part_of_the_case():
    asked = []

    def parts(case_id):
        asked.append(case_id)
        return {store: part(store) for store in ("notifications", "routing", "intake")}

    found = application.case_history(Database(), CODE.lower().replace("-", " "), parts)
    assert asked == [str(case_id_for(CODE))]
    assert found["tracking_code"] == CODE
    assert [e["store"] for e in found["events"]] == ["intake", "routing", "notifications"]


def test_no_history_for_what_cannot_be_a_tracking_code_or_a_case_never_stored():
    def never(case_id):
        raise AssertionError("no service is asked")

    assert application.case_history(Database(), "not-a-code", never) is None
    empty = {store: [] for store in ("intake", "routing", "notifications")}
    assert application.case_history(Database(), CODE, lambda case_id: empty) is None


def test_a_history_with_a_services_part_missing_is_refused():
    db = Database()
    with pytest.raises(PartsMissing) as refused:
        application.case_history(db, CODE, lambda case_id: {"routing": part("routing")})
    assert refused.value.missing == ["intake", "notifications"]
    assert db.transactions == 0
