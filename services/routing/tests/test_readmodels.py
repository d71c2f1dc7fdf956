"""The open cases routing gives the operators' metrics, counted from its office queue."""

from contextlib import contextmanager

from prometheus_client import REGISTRY

from services.routing import readmodels
from services.routing.readmodels import office_kind, open_cases
from shared import metrics


class Rows:
    def __init__(self, rows):
        self.rows = rows

    def execute(self, sql):
        assert "routing_office_queue" in sql and "resolved" in sql
        return iter(self.rows)


def test_an_office_id_without_its_area_is_its_kind():
    assert office_kind("commune-010203") == "commune"
    assert office_kind("district-ombudsman-0102") == "district-ombudsman"
    assert office_kind("national-ombudsman") == "national-ombudsman"
    assert office_kind(None) == "none"


def test_open_cases_are_counted_by_kind_and_level_with_every_known_kind():
    rows = [{"office_id": "commune-010203", "n": 2}, {"office_id": "commune-010204", "n": 3},
            {"office_id": "owso-0102", "n": 1}, {"office_id": "somewhere-else", "n": 4}]
    found = dict(open_cases(Rows(rows)))
    assert found[("commune", "commune")] == 5
    assert found[("owso", "district")] == 1
    assert found[("national-ombudsman", "national")] == 0
    assert found[("somewhere-else", "unknown")] == 4
    assert {level for _, level in found} == {"commune", "district", "province", "national",
                                            "unknown"}


def test_the_open_cases_are_read_when_the_metrics_are_scraped():
    class Database:
        reads = 0

        @contextmanager
        def transaction(self):
            Database.reads += 1
            yield Rows([{"office_id": "owsu-01", "n": 7}])

    readmodels.count_open_cases(Database())
    try:
        assert Database.reads == 0  # nothing is read until a scrape asks
        value = REGISTRY.get_sample_value("ourvoice_open_cases",
                                          {"office_kind": "owsu", "level": "province"})
        assert value == 7 and Database.reads == 1
    finally:
        metrics.scraped.forget("ourvoice_open_cases", "routing")
