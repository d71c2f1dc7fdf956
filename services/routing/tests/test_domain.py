from datetime import UTC, datetime

import pytest
from eventsourcing.application import Application

from services.routing.domain import Case, choose_office
from shared.categories import Category, categories
from shared.offices import describe


@pytest.mark.parametrize(
    ("level", "sensitive", "office", "reason"),
    [
        ("commune", False, "commune-120101", "category-level"),
        ("district", False, "owso-1201", "category-level"),
        ("province", False, "owsu-12", "category-level"),
        ("commune", True, "district-ombudsman-1201", "sensitive"),
        ("district", True, "district-ombudsman-1201", "sensitive"),
        ("province", True, "provincial-ombudsman-12", "sensitive"),
    ],
)
def test_the_category_level_and_the_place_choose_the_office(level, sensitive, office, reason):
    category = Category("x", "X", "X", level, sensitive)
    assert choose_office(category, "120101") == (office, reason)


def test_every_category_routes_to_an_office_that_exists_everywhere():
    for category in categories().values():
        for commune in ("120101", "010201", "170101", "020101"):
            office, _ = choose_office(category, commune)
            assert describe(office) is not None, (category.code, commune, office)


def test_a_routed_case_carries_its_office_and_deadlines():
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    import uuid

    received = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    case = Case.route(uuid.uuid4(), "K7M2P-9QX4R", "120101", "complaint",
                      categories()["construction-permits"], received)
    app.save(case)
    copy = app.repository.get(case.id)
    assert copy.office_id == "owso-1201"
    assert copy.acknowledge_due > received and copy.resolve_due > copy.acknowledge_due
    event = next(iter(app.events.get(case.id)))
    assert type(event).__name__ == "CaseRouted"
    assert event.context == {"tracking_code": "K7M2P-9QX4R", "commune": "120101",
                             "office_id": "owso-1201"}
