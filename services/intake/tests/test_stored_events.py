"""Events recorded before the case's events became `@event` methods still replay: the
fixture is one case's whole history as the earlier aggregate stored it (topics and
states, byte for byte), with what the earlier aggregate read back from it."""

import json
from datetime import datetime
from pathlib import Path

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from services.intake.tests.test_domain import submitted_case
from shared.tracking import case_id_for

FIXTURE = json.loads((Path(__file__).parent / "data" / "stored_events.json").read_text())
CASE_ID = case_id_for("K7M2P-9QX4R")
DESK_DEFAULTS = {"recorded_by_office": None, "about_recording_office": False, "consent": None}


def app() -> Application:
    return Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def stored(events) -> list[StoredEvent]:
    return [StoredEvent(originator_id=CASE_ID, originator_version=e["originator_version"],
                        topic=e["topic"], state=e["state"].encode()) for e in events]


def test_a_history_stored_by_the_earlier_aggregate_replays_to_the_same_case():
    store = app()
    store.recorder.insert_events(stored(FIXTURE["events"]))
    case = store.repository.get(CASE_ID)
    replayed = {k: v for k, v in vars(case).items() if not k.startswith("_")}
    assert json.loads(json.dumps(replayed, ensure_ascii=False, default=str)) == FIXTURE["replayed"]
    assert isinstance(case.messages[0]["at"], datetime)
    assert case.personal_data == "erased" and case.withdrawn


def test_the_same_history_recorded_now_stores_the_same_topics_and_fields():
    case = submitted_case(anonymous=False, sealed_contact="c2VhbGVk", consent_to_contact=True,
                          sensitive=False)
    case.send_message("ចម្លើយ", "waiting-for-citizen", "q1", "commune-120101")
    case.send_message("one more", "routed", None, None)
    case.give_feedback(True, 4, "ok", "resolved", "r1", "commune-120101")
    case.give_feedback(False, 1, "nothing changed", "resolved", "r2", "commune-120101")
    case.erase_personal_data("operator", "commune-120101")
    case.withdraw("solved it myself", "resolved", "commune-120101")
    store = app()
    store.save(case)
    now = store.recorder.select_notifications(start=1, limit=100)
    before = FIXTURE["events"]
    assert [s.topic for s in now] == [e["topic"] for e in before]
    for new, old in zip(now, before, strict=True):
        new_state, old_state = json.loads(new.state), json.loads(old["state"])
        new_state.pop("timestamp"), old_state.pop("timestamp")
        # Fields added since, at their defaults (a case not recorded at an office desk).
        for added, default in DESK_DEFAULTS.items():
            if added not in old_state and new_state.get(added, default) == default:
                new_state.pop(added, None)
        assert new_state == old_state, new.topic


def test_a_submission_stored_before_the_optional_fields_existed_replays_with_defaults():
    submitted = json.loads(FIXTURE["events"][0]["state"])
    for later in ("sensitive", "consent_to_contact", "sealed_contact"):
        del submitted[later]
    store = app()
    store.recorder.insert_events(stored([{**FIXTURE["events"][0],
                                          "state": json.dumps(submitted)}]))
    case = store.repository.get(CASE_ID)
    assert (case.sensitive, case.consent_to_contact, case.personal_data) == (False, False, "none")
