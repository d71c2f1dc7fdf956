import threading

from eventsourcing.application import Application

from services.intake.appends import GroupCommit
from services.intake.tests.test_domain import submitted_case
from shared.store import CaseStore


class Store(CaseStore):
    name = "intake"


def store() -> Store:
    return Store(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def test_cases_submitted_at_once_are_all_recorded_and_a_repeat_is_told_apart():
    app = store()
    group = GroupCommit(app)
    codes = [f"K7M2P-9Q{a}{b}{c}" for a in "XY" for b in "45" for c in "RSTU"]
    cases = [submitted_case(code) for code in codes] + [submitted_case(codes[0])]
    start = threading.Barrier(len(cases))
    results: dict[int, bool] = {}

    def submit(n):
        start.wait()
        results[n] = group.record_new(cases[n])

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Exactly one of the two cases with the same code was recorded.
    assert sorted(results[n] for n in (0, len(cases) - 1)) == [False, True]
    assert all(results[n] for n in range(1, len(codes)))
    for code in codes:
        assert app.repository.get(submitted_case(code).id).tracking_code == code
    assert len(app.recorder.select_notifications(start=1, limit=100)) == len(codes)


def test_a_case_alone_is_recorded_at_once():
    app = store()
    assert GroupCommit(app).record_new(submitted_case()) is True
    assert GroupCommit(app).record_new(submitted_case()) is False
    assert isinstance(app, Application)
