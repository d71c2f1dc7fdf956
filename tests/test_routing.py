"""Routing through the real services: offices, office work, deadlines, escalation."""

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.e2e

# Water supply, civil registration and business licences keep deadlines of an hour or
# more; every other category breaches its acknowledgement deadline after three seconds.
SYSTEM_ENV = {
    "OURVOICE_SLA_POLICIES": str(Path(__file__).parent / "data" / "sla-seconds.yaml"),
    "OURVOICE_SWEEP_SECONDS": "0.2",
}


def queue(system, office_id):
    response = system.call("GET", "routing", f"/v1/offices/{office_id}/queue",
                           system.principal("auditor"), params={"limit": 500})
    assert response.status_code == 200, response.text
    return response.json()["cases"]


def queued(system, office_id, tracking_code):
    return next((c for c in queue(system, office_id) if c["tracking_code"] == tracking_code),
                None)


@pytest.mark.parametrize(("category", "commune", "office"), [
    ("water-supply", "120101", "commune-120101"),
    ("civil-registration", "171001", "commune-171001"),
])
def test_a_complaint_is_routed_to_the_office_that_delivers_the_service(system, category,
                                                                        commune, office):
    case = submit(system, complaint(category=category, location={"commune": commune}))
    wait_until(lambda: queued(system, office, case["tracking_code"]), what=f"case at {office}")


def test_sensitive_cases_go_straight_to_the_district_ombudsman(system):
    case = submit(system, complaint(category="gender-based-violence",
                                    location={"commune": "170101"}))
    entry = wait_until(lambda: queued(system, "district-ombudsman-1701", case["tracking_code"]),
                       what="sensitive case at the district ombudsman")
    assert entry["status"] == "escalated"


def test_office_work_acknowledge_ask_wait_and_resolve(system):
    staff = system.principal("staff", "commune-120101")
    case = submit(system, complaint())
    wait_until(lambda: queued(system, "commune-120101", case["tracking_code"]), what="routed")
    path = f"/v1/cases/{case['case_id']}"

    early = system.call("POST", "routing", path + "/resolve", staff, json={"resolution": "x"})
    assert early.status_code == 409 and "acknowledge" in early.json()["errors"]["status"][0]
    assert system.call("POST", "routing", path + "/acknowledge", staff).status_code == 200
    asked = system.call("POST", "routing", path + "/request-info", staff,
                        json={"question": "ភូមិណា? Which village?"})
    assert asked.status_code == 200 and asked.json()["status"] == "waiting-for-citizen"
    # The clock is stopped while the office waits: no running deadline in the queue.
    entry = wait_until(lambda: (e := queued(system, "commune-120101", case["tracking_code"]))
                       and e["status"] == "waiting-for-citizen" and e, what="waiting")
    assert entry["resolve_due"] is None and entry["acknowledge_due"] is None
    note = system.call("POST", "routing", path + "/notes", staff, json={"text": "called twice"})
    assert note.status_code == 200
    bad = system.call("POST", "routing", path + "/request-info", staff, json={"question": ""})
    assert bad.status_code == 400 and "question" in bad.json()["errors"]


def test_only_the_case_office_staff_may_act_and_auditors_never_write(system):
    case = submit(system)
    wait_until(lambda: queued(system, "commune-120101", case["tracking_code"]), what="routed")
    path = f"/v1/cases/{case['case_id']}/acknowledge"
    assert system.call("POST", "routing", path).status_code == 401
    assert system.call("POST", "routing", path, "p1.forged").status_code == 401
    assert system.call("POST", "routing", path,
                       system.principal("staff", "commune-120109")).status_code == 403
    assert system.call("POST", "routing", path, system.principal("auditor")).status_code == 403
    assert system.call("POST", "routing", path, case["citizen_token"]).status_code == 403
    unknown = system.call("POST", "routing", "/v1/cases/9d6f1c8e-0000-4000-8000-000000000000"
                          "/acknowledge", system.principal("staff", "commune-120101"))
    assert unknown.status_code == 404


def test_revoked_and_expired_tokens_are_refused(system):
    import subprocess

    token = system.principal("auditor", fresh=True)
    assert system.call("GET", "routing", "/v1/offices/owso-1201/queue", token).status_code == 200
    principal_id = system.scalar("SELECT id FROM ourvoice_principals ORDER BY created_at DESC "
                                 "LIMIT 1")
    subprocess.run([".venv/bin/ourvoice", "principal", "revoke", str(principal_id)],
                   env=system.env, check=True, capture_output=True)
    revoked = system.call("GET", "routing", "/v1/offices/owso-1201/queue", token)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["errors"]["Authorization"][0]
    expiring = system.principal("auditor", fresh=True)
    system.query("UPDATE ourvoice_principals SET expires_at = now() - interval '1 second' "
                 "WHERE created_at = (SELECT max(created_at) FROM ourvoice_principals) "
                 "RETURNING id")
    expired = system.call("GET", "routing", "/v1/offices/owso-1201/queue", expiring)
    assert expired.status_code == 401 and "expired" in expired.json()["errors"]["Authorization"][0]


def test_two_staff_acting_at_once_one_wins_the_other_gets_409(system):
    staff = system.principal("staff", "commune-120101")
    for _ in range(5):
        case = submit(system)
        wait_until(lambda c=case: queued(system, "commune-120101", c["tracking_code"]),
                   what="routed")
        path = f"/v1/cases/{case['case_id']}/acknowledge"
        barrier = threading.Barrier(2)

        def acknowledge(_, path=path, barrier=barrier):
            barrier.wait()
            return system.call("POST", "routing", path, staff).status_code

        with ThreadPoolExecutor(2) as pool:
            codes = sorted(pool.map(acknowledge, range(2)))
        assert codes == [200, 409]
        assert system.scalar("SELECT count(*) FROM routing_events WHERE originator_id = %s "
                             "AND topic LIKE %s", (case["case_id"], "%CaseAcknowledged")) == 1


def test_a_fourth_transfer_is_refused_in_words_and_the_office_escalates(system):
    case = submit(system, complaint(category="business-licences"))
    path = f"/v1/cases/{case['case_id']}"
    office = "owso-1201"
    wait_until(lambda: queued(system, office, case["tracking_code"]), what="routed")
    for target in ("owso-1202", "owso-1203", "owso-1204"):
        moved = system.call("POST", "routing", path + "/transfer",
                            system.principal("staff", office),
                            json={"office_id": target, "reason": "not our district"})
        assert moved.status_code == 200 and moved.json()["office_id"] == target
        office = target
    last = system.call("POST", "routing", path + "/transfer", system.principal("staff", office),
                       json={"office_id": "owso-1205", "reason": "still not ours"})
    assert last.status_code == 409
    assert last.json() == {"errors": {"status": [
        "this case has been transferred 3 times, the most allowed; "
        "escalate it to the ombudsman instead"]}}
    escalated = system.call("POST", "routing", path + "/escalate",
                            system.principal("staff", office),
                            json={"reason": "four offices say it is not theirs"})
    assert escalated.status_code == 200, escalated.text
    assert (escalated.json()["office_id"], escalated.json()["status"]) == (
        "district-ombudsman-1204", "escalated")
    wait_until(lambda: queued(system, "district-ombudsman-1204", case["tracking_code"]),
               what="at the ombudsman's queue")
    path = f"/v1/cases/{case['case_id']}/transfer"
    nowhere = system.call("POST", "routing", path, system.principal("staff", "owso-1201"),
                          json={"office_id": "owso-9999", "reason": "x"})
    assert nowhere.status_code in (400, 403)


def test_a_breached_deadline_escalates_by_itself_up_to_national(system):
    """Three-second deadlines (24x7): nobody touches the case, and it climbs the ladder.
    A second routing instance sweeps at the same time: each breach is recorded once."""
    import subprocess

    from ourvoice.supervisor import service_command
    from tests.system import ROOT, free_port

    second = subprocess.Popen(
        service_command("routing"), cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**system.env, "ROUTING_ADDRESS": f"127.0.0.1:{free_port()}"})
    try:
        case = submit(system, complaint(category="construction-permits",
                                        location={"commune": "170101"}))
        ladder = ["owso-1701", "district-ombudsman-1701", "provincial-ombudsman-17",
                  "national-ombudsman"]
        for office in ladder:
            wait_until(lambda o=office: queued(system, o, case["tracking_code"]), timeout=20,
                       what=f"case reaches {office}")
        wait_until(lambda: system.scalar(
            "SELECT count(*) FROM routing_events WHERE originator_id = %s AND topic LIKE %s",
            (case["case_id"], "%SlaBreached")) == 4, timeout=20, what="national breaches too")
        time.sleep(1.0)  # a doubled breach by the second sweeper would show up by now
        assert second.poll() is None, "the second routing instance kept running"
    finally:
        second.terminate()
        second.wait(timeout=20)
    events = [r["topic"].rsplit(".", 1)[-1] for r in system.query(
        "SELECT topic FROM routing_events WHERE originator_id = %s ORDER BY originator_version",
        (case["case_id"],))]
    assert events[:4] == ["CaseRouted", "SlaWarning", "SlaBreached", "CaseEscalated"]
    assert Counter(events) == {"CaseRouted": 1, "SlaWarning": 4, "SlaBreached": 4,
                               "CaseEscalated": 3}
    wait_until(lambda: queued(system, "national-ombudsman", case["tracking_code"])["overdue"],
               what="the queue shows the case overdue")


def test_the_queue_rebuilt_from_events_equals_the_live_queue(system):
    from services.routing import readmodels
    from services.routing.application import Routing
    from shared.config import Postgres
    from shared.db import Database
    from shared.rebuild import rebuild
    from shared.store import open_store

    submit(system)
    wait_until(system.settled, what="everything projected")
    pg = Postgres(system.dbname, "127.0.0.1", 5432, "postgres", "")
    db, store = Database(pg, max_size=2), open_store(Routing, pg)
    try:
        for projection in readmodels.PROJECTIONS:
            outcome = rebuild(db, store, projection, swap=False)
            assert outcome.events > 0
            assert set(outcome.differences.values()) == {0}, (projection.name,
                                                              outcome.differences)
        rows_before = system.scalar("SELECT count(*) FROM routing_office_queue")
        indexes_before = system.indexes("routing_office_queue")
        swapped = rebuild(db, store, readmodels.OFFICE_QUEUE, swap=True)
        assert system.scalar("SELECT count(*) FROM routing_office_queue") == rows_before > 0
        # The indexes, made after the bulk of the replay, came along with the table.
        assert system.indexes("routing_office_queue") == indexes_before
        assert len(indexes_before) == 7  # the key and one per filter of the queue
        assert swapped.position == system.scalar(
            "SELECT position FROM ourvoice_followers WHERE name = 'projection:routing.office_queue'")
    finally:
        db.close()
        store.close()
    # The live projection goes on after the swap.
    later = submit(system)
    wait_until(lambda: queued(system, "commune-120101", later["tracking_code"]),
               what="projected after the swap")


def test_the_directory_lists_offices_and_operators_amend_it(system, tmp_path):
    import subprocess

    offices = system.call("GET", "routing", "/v1/offices").json()
    kinds = {}
    for office in offices:
        kinds[office["kind"]] = kinds.get(office["kind"], 0) + 1
    assert kinds == {"commune": 1661, "owso": 210, "district-ombudsman": 210, "owsu": 25,
                     "provincial-ombudsman": 25, "national-ombudsman": 1}
    phnom_penh = system.call("GET", "routing", "/v1/offices",
                             params={"level": "district", "province": "12"}).json()
    assert {o["kind"] for o in phnom_penh} == {"owso", "district-ombudsman"}
    assert all(o["province"] == "12" for o in phnom_penh)
    assert system.call("GET", "routing", "/v1/offices", params={"level": "x"}).status_code == 400

    csv = tmp_path / "amendments.csv"
    csv.write_text("office_id,merged_into,address,phone\n"
                   "commune-120110,commune-120109,,\n"
                   "commune-120109,,\"Street 360, Phnom Penh\",023 000 000\n", encoding="utf-8")
    done = subprocess.run([".venv/bin/ourvoice", "directory", "import", str(csv)],
                          env=system.env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("office_id,merged_into\ncommune-120111,nowhere-1\n", encoding="utf-8")
    refused = subprocess.run([".venv/bin/ourvoice", "directory", "import", str(wrong)],
                             env=system.env, capture_output=True, text=True)
    assert refused.returncode == 2 and "line 2" in refused.stderr

    def amended():
        office = next(o for o in system.call("GET", "routing", "/v1/offices").json()
                      if o["id"] == "commune-120109")
        return office["phone"] == "023 000 000" and office

    assert wait_until(amended, what="amendment projected")["address"] == "Street 360, Phnom Penh"
    case = submit(system, complaint(location={"commune": "120110"}))
    wait_until(lambda: queued(system, "commune-120109", case["tracking_code"]),
               what="case for a merged office reaches the office it merged into")
