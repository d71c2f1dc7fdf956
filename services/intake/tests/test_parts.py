"""What intake declares for those who run it: its store's projections and the read
model the broker feeds, found on the service's providers."""

from services.intake import readmodels
from services.intake.application import Intake
from services.intake.service import Service


def test_the_service_declares_its_store_projection_and_the_case_view_it_subscribes():
    assert Service.store.store_class is Intake and Intake.name == "intake"
    assert list(Service.store.projections) == [readmodels.CASES]
    assert Service.db.subscribers == (readmodels.CASE_VIEW,)
    view = readmodels.CASE_VIEW
    assert (view.name, view.consumer) == ("intake.case_view", "intake")
    assert all(ddl in Service.db.ddl for ddl in view.ddl)


def test_every_word_the_view_shows_with_its_entry_is_also_kept_as_the_latest():
    assert set(readmodels.LATEST_WORDS) == set(readmodels.DETAIL)
