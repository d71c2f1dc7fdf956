"""Audit through the real services: a case's history from every store (HTTP and CLI),
as it stood at a time, after its personal data was erased; the hash chains and a
tampered event; every read model rebuilt beside the live one and compared row for row;
auditors' tokens that write nothing."""

import json
import re
import subprocess
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.system import ROOT, complaint, submit, wait_until

pytestmark = pytest.mark.e2e

OFFICE = "commune-120101"
NEEDLES = ("Sopheap", "012 777", "12777888", "sopheap@example.org", "female",
           "ទឹកស្អាតមិនហូរ")


def ourvoice(system, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), *args], env=system.env,
                          capture_output=True, text=True, timeout=timeout)


def identified() -> dict:
    return complaint(complainant={"anonymous": False, "name": "Chan Sopheap",
                                  "phone": "012 777 888", "email": "sopheap@example.org",
                                  "gender": "female"})


def office(system, case, action, body=None):
    response = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/{action}",
                           system.principal("staff", OFFICE), json=body or {})
    assert response.status_code in (200, 201), response.text


def citizen(system, case, action, body):
    response = system.call("POST", "intake", f"/v1/cases/{case['tracking_code']}/{action}",
                           case["citizen_token"], json=body)
    assert response.status_code == 200, response.text


def routing_status(system, case) -> str | None:
    rows = system.query("SELECT status FROM routing_office_queue WHERE case_id = %s",
                        (case["case_id"],))
    return rows[0]["status"] if rows else None


def history(system, case, token=None, **params):
    return system.call("GET", "reporting", f"/v1/audit/cases/{case['tracking_code']}",
                       token or system.principal("auditor"), params=params)


def complete_history(system, case):
    """The case's history once it lists every event stored so far: the audit history is
    read from each service's index, which follows its store within a second."""
    def complete():
        response = history(system, case)
        assert response.status_code == 200, response.text
        listed = {(e["store"], e["position"]) for e in response.json()["events"]}
        return listed == stored(system, case) and response

    return wait_until(complete, what="every stored event of the case in its history")


def stored(system, case) -> set[tuple[str, int]]:
    """(store, notification id) of every stored event of the case, found the slow way."""
    found = set()
    for store in ("intake", "routing"):
        found |= {(store, r["notification_id"]) for r in system.query(
            f"SELECT notification_id FROM {store}_events WHERE originator_id = %s",
            (case["case_id"],))}
    found |= {("notifications", r["notification_id"]) for r in system.query(
        "SELECT notification_id FROM notifications_events "
        "WHERE position(convert_to(%s, 'UTF8') in state) > 0 "
        "OR position(convert_to(%s, 'UTF8') in state) > 0",
        (case["tracking_code"], case["case_id"].replace("-", "")))}
    return found


@pytest.fixture(scope="module")
def worked(system):
    """A case taken through question, answer, resolution and a satisfied citizen."""
    case = submit(system, identified())
    wait_until(lambda: routing_status(system, case) == "routed", what="routed")
    office(system, case, "acknowledge")
    office(system, case, "request-info", {"question": "Which village?"})
    wait_until(lambda: system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                                   case["citizen_token"]).json()["status"]
               == "waiting-for-citizen", what="the citizen sees the question")
    citizen(system, case, "messages", {"text": "Phum Thmei, near the pagoda"})
    wait_until(lambda: routing_status(system, case) == "acknowledged", what="clock restarted")
    office(system, case, "notes", {"text": "called Sopheap on 012 777 888"})
    office(system, case, "resolve", {"resolution": "The pipe was repaired."})
    wait_until(lambda: system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                                   case["citizen_token"]).json()["status"] == "resolved",
               what="the citizen sees the resolution")
    citizen(system, case, "feedback", {"satisfied": True, "rating": 4, "comment": "thanks"})
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_events WHERE originator_id = %s AND topic LIKE %s",
        (case["case_id"], "%CaseClosed")) == 1, what="closed")
    wait_until(system.settled, what="every event reached reporting")
    return case


def test_the_history_has_every_event_of_every_service_in_order_with_actor_and_state(
        system, worked):
    response = complete_history(system, worked)
    found = response.json()
    events = found["events"]
    assert {e["store"] for e in events} == {"intake", "routing", "notifications"}
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    kinds = [e["event_type"] for e in events if e["store"] != "notifications"]
    assert kinds == ["CaseSubmitted", "CaseRouted", "CaseAcknowledged", "InformationRequested",
                     "InformationProvided", "ClockRestarted", "CaseNoteAdded", "CaseResolved",
                     "FeedbackReceived", "CaseClosed"]
    by_type = {e["event_type"]: e for e in events}
    staff_id = system.scalar("SELECT id FROM ourvoice_principals WHERE role = 'staff' "
                             "AND office_id = %s", (OFFICE,))
    assert by_type["CaseAcknowledged"]["actor"] == {"role": "staff", "office_id": OFFICE,
                                                    "principal_id": str(staff_id)}
    assert by_type["CaseSubmitted"]["actor"] == {"role": "citizen"}
    assert by_type["CaseRouted"]["actor"] == {"role": "system"}
    assert by_type["CaseClosed"]["actor"] == {"role": "citizen"}  # closed by being satisfied
    notices = [e for e in events if e["store"] == "notifications"]
    assert "NotificationDue" in {e["event_type"] for e in notices}
    assert {e["actor"]["role"] for e in notices} == {"system"}
    assert [(e["event_type"], e["state"]["status"]) for e in events
            if e["store"] != "notifications"] == [
        ("CaseSubmitted", "submitted"), ("CaseRouted", "routed"),
        ("CaseAcknowledged", "acknowledged"), ("InformationRequested", "waiting-for-citizen"),
        ("InformationProvided", "acknowledged"), ("ClockRestarted", "acknowledged"),
        ("CaseNoteAdded", "acknowledged"), ("CaseResolved", "resolved"),
        ("FeedbackReceived", "resolved"), ("CaseClosed", "closed")]
    assert by_type["CaseRouted"]["state"]["office_id"] == OFFICE
    assert by_type["CaseRouted"]["state"]["acknowledge_due"] is not None
    assert by_type["CaseSubmitted"]["data"]["contact"] == "sealed"
    assert by_type["CaseResolved"]["data"] == {"resolution": "The pipe was repaired.",
                                               "acknowledge_due": None, "resolve_due": None}
    assert by_type["CaseNoteAdded"]["data"] == {"text": "withheld"}
    assert found["state"]["status"] == "closed" and found["state"]["personal_data"] == "sealed"
    # Never a citizen's personal data, nor the words of the citizen or a staff note.
    assert not [n for n in (*NEEDLES, "Phum Thmei", "thanks") if n in response.text]


def test_the_cli_gives_the_same_history_and_the_case_as_it_stood_at_a_time(system, worked):
    def same():  # notifications may record another attempt between the two
        over_http = history(system, worked).json()
        done = ourvoice(system, "audit", "history", worked["tracking_code"].lower(), "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) == over_http and over_http

    over_http = wait_until(same, timeout=60, interval=1, what="the CLI and HTTP agree")
    text = ourvoice(system, "audit", "history", worked["tracking_code"])
    assert text.returncode == 0
    assert re.search(r"CaseAcknowledged\s+staff of commune-120101 \(\w{8}\)\s+-> acknowledged",
                     text.stdout), text.stdout
    assert f"Case {worked['tracking_code']}" in text.stdout and "closed" in text.stdout

    asked = next(e for e in over_http["events"] if e["event_type"] == "InformationRequested")
    then = history(system, worked, as_of=asked["occurred_at"]).json()
    assert then["events"][-1]["event_type"] == "InformationRequested"
    assert then["state"]["status"] == "waiting-for-citizen"
    assert then["as_of"] is not None
    cli_then = ourvoice(system, "audit", "history", worked["tracking_code"], "--json",
                        "--as-of", asked["occurred_at"])
    assert json.loads(cli_then.stdout)["events"] == then["events"]
    before = ourvoice(system, "audit", "history", worked["tracking_code"],
                      "--as-of", "2000-01-01T00:00:00+07:00")
    assert before.returncode == 0 and "nothing had happened yet" in before.stdout


def test_histories_are_for_auditors_and_admins(system, worked):
    assert history(system, worked, system.principal("admin")).status_code == 200
    staff = history(system, worked, system.principal("staff", OFFICE))
    assert staff.status_code == 403 and "Authorization" in staff.json()["errors"]
    assert system.call("GET", "reporting",
                       f"/v1/audit/cases/{worked['tracking_code']}").status_code == 401
    assert history(system, worked, worked["citizen_token"]).status_code == 403
    for unknown in ("22222-22222", "not-a-code"):
        response = system.call("GET", "reporting", f"/v1/audit/cases/{unknown}",
                               system.principal("auditor"))
        assert response.status_code == 404 and response.json()["errors"]
    assert history(system, worked, as_of="last tuesday").status_code == 400
    missing = ourvoice(system, "audit", "history", "22222-22222")
    assert missing.returncode == 1 and "no case" in missing.stderr


def test_verify_finds_an_event_edited_in_the_database(system, worked):
    intact = ourvoice(system, "audit", "verify")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    for store in ("intake", "routing", "notifications"):
        assert re.search(rf"^{store}: [\d,]+ events, chain intact, head [0-9a-f]{{64}}$",
                         intact.stdout, re.M), intact.stdout
    target = system.query(
        "SELECT notification_id, state FROM routing_events WHERE originator_id = %s "
        "AND topic LIKE %s", (worked["case_id"], "%CaseResolved"))[0]
    forged = bytes(target["state"]).replace(b"The pipe was repaired.", b"Nothing was wrong..")
    assert forged != bytes(target["state"])
    system.query("UPDATE routing_events SET state = %s WHERE notification_id = %s "
                 "RETURNING notification_id", (forged, target["notification_id"]))
    try:
        broken = ourvoice(system, "audit", "verify")
        assert broken.returncode == 1
        assert f"routing: BROKEN at notification {target['notification_id']}: the event or " \
               f"its link was altered (case {worked['tracking_code']})" in broken.stdout
        assert re.search(r"^intake: .* chain intact", broken.stdout, re.M)
    finally:
        def restored():  # whatever happened above, the other tests need the true event
            try:
                return system.query("UPDATE routing_events SET state = %s WHERE notification_id"
                                    " = %s RETURNING notification_id",
                                    (target["state"], target["notification_id"]))
            except psycopg.OperationalError:
                return None

        wait_until(restored, timeout=120, interval=1, what="the event restored")
    assert ourvoice(system, "audit", "verify").returncode == 0


def test_every_read_model_rebuilt_beside_the_live_one_is_the_same_row_for_row(system, worked):
    models = ("intake-cases", "intake.case_view", "reporting", "routing.deadline_timers",
              "routing.office_amendments", "routing.office_queue")
    checked = ourvoice(system, "projections", "rebuild", "--all", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name in models:
        assert re.search(rf"^{re.escape(name)}: [\d,]+ events replayed .* compared with the live "
                         r"model; the same row for row$", checked.stdout, re.M), checked.stdout
    assert "events/s" in checked.stdout

    # A live row that events do not explain is found, and a rebuild puts it right.
    system.query("UPDATE reporting_cases SET category = 'land' WHERE case_id = %s RETURNING 1",
                 (worked["case_id"],))
    differs = ourvoice(system, "projections", "rebuild", "reporting", "--check")
    assert differs.returncode == 1 and "2 rows differed (reporting_cases: 2)" in differs.stdout
    swapped = ourvoice(system, "projections", "rebuild", "--all")
    assert swapped.returncode == 0, swapped.stdout + swapped.stderr
    assert system.scalar("SELECT category FROM reporting_cases WHERE case_id = %s",
                         (worked["case_id"],)) == "water-supply"

    # The services go on after the swap, into the new tables.
    later = submit(system)
    wait_until(lambda: routing_status(system, later) == "routed", what="routed after the swap")
    wait_until(lambda: system.scalar("SELECT count(*) FROM reporting_cases WHERE case_id = %s",
                                     (later["case_id"],)) == 1, what="counted after the swap")
    wait_until(system.settled, what="settled")
    status = ourvoice(system, "projections", "status")
    assert status.returncode == 0
    for name in models:
        assert re.search(rf"{re.escape(name)}\s.*\s0\s*│?$", status.stdout, re.M), status.stdout


def test_after_erasure_the_history_replays_and_reads_the_contact_as_erased(system):
    case = submit(system, identified())
    wait_until(lambda: routing_status(system, case) == "routed", what="routed")
    erased = ourvoice(system, "privacy", "erase", case["tracking_code"])
    assert erased.returncode == 0, erased.stderr
    wait_until(system.settled, what="erasure delivered")
    response = history(system, case)
    assert response.status_code == 200
    events = response.json()["events"]
    last = [e for e in events if e["store"] != "notifications"][-1]
    assert last["event_type"] == "PersonalDataErased"
    assert last["actor"] == {"role": "operator"} and last["occurred_at"]
    assert events[0]["data"]["contact"] == "erased"
    assert {e["state"]["personal_data"] for e in events} == {"erased"}
    assert not [n for n in NEEDLES if n in response.text]
    text = ourvoice(system, "audit", "history", case["tracking_code"])
    assert "PersonalDataErased" in text.stdout and "personal data erased" in text.stdout


def test_auditors_tokens_write_nothing(system, worked):
    """Every endpoint that changes something, in every service, answers 403 to an auditor;
    the only writes open to anyone are a citizen's submissions, a staff login and the
    SMS gateway's and Telegram's webhooks (which a signature opens, not a token)."""
    auditor = system.principal("auditor")
    fill = {"case_id": worked["case_id"], "tracking_code": worked["tracking_code"],
            "office_id": OFFICE}
    public_writes, refused = set(), []
    for service in ("intake", "routing", "notifications", "reporting"):
        spec = system.call("GET", service, "/openapi.json").json()
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                if method not in ("post", "put", "patch", "delete"):
                    continue
                if "security" not in operation:
                    public_writes.add(path)
                    continue
                url = re.sub(r"{(\w+)}", lambda m: str(fill.get(m.group(1), "x")), path)
                answer = system.call(method.upper(), service, url, auditor, json={})
                refused.append((service, method, path, answer.status_code))
    assert refused and all(code == 403 for *_, code in refused), refused
    assert public_writes == {"/v1/cases", "/open311/v2/requests.json",
                             "/open311/v2/requests.xml", "/v1/sessions",
                             "/v1/channels/sms", "/v1/channels/telegram"}


def cambodia_clock(instant: str) -> str:
    """An instant as a wall clock in Phnom Penh shows it, without an offset."""
    moment = datetime.fromisoformat(instant).astimezone(ZoneInfo("Asia/Phnom_Penh"))
    return moment.replace(tzinfo=None).isoformat(sep=" ")


def test_a_time_without_an_offset_is_cambodias_and_the_text_shows_cambodias_clock(
        system, worked):
    events = history(system, worked).json()["events"]
    asked = next(e for e in events if e["event_type"] == "InformationRequested")
    local = cambodia_clock(asked["occurred_at"])
    then = ourvoice(system, "audit", "history", worked["tracking_code"], "--json",
                    "--as-of", local)
    assert then.returncode == 0, then.stderr
    # Read as UTC it would be seven hours later: the case closed by then.
    assert json.loads(then.stdout)["events"][-1]["event_type"] == "InformationRequested"
    assert json.loads(then.stdout)["state"]["status"] == "waiting-for-citizen"
    text = ourvoice(system, "audit", "history", worked["tracking_code"], "--as-of", local)
    assert f"as it stood at {local[:19]} +07 (Asia/Phnom_Penh): waiting-for-citizen" \
        in text.stdout, text.stdout
    submitted = events[0]
    assert re.search(rf"^{re.escape(cambodia_clock(submitted['occurred_at'])[:19])} \+07\s+"
                     r"intake#\d+\s+CaseSubmitted", text.stdout, re.M), text.stdout
    # The same clock reading in UTC is seven hours earlier than in Phnom Penh.
    utc_clock = datetime.fromisoformat(submitted["occurred_at"]).astimezone(UTC).replace(
        tzinfo=None).isoformat(sep=" ")
    in_utc = ourvoice(system, "audit", "history", worked["tracking_code"], "--json",
                      "--as-of", utc_clock, "--zone", "UTC")
    assert [e["event_type"] for e in json.loads(in_utc.stdout)["events"]] == ["CaseSubmitted"]
    too_early = ourvoice(system, "audit", "history", worked["tracking_code"], "--as-of", utc_clock)
    assert "nothing had happened yet" in too_early.stdout, too_early.stdout
    unknown = ourvoice(system, "audit", "history", worked["tracking_code"], "--zone", "Mars/Olympus")
    assert unknown.returncode == 2 and "--zone" in unknown.stderr


def test_the_text_history_says_where_a_case_went_and_why(system):
    case = submit(system, complaint(location={"commune": "120109"}))
    first, second = "commune-120109", "commune-120110"
    wait_until(lambda: routing_status(system, case) == "routed", what="routed")
    staff = lambda at: system.principal("staff", at)  # noqa: E731
    moved = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/transfer", staff(first),
                        json={"office_id": second, "reason": "the pipe is in the next commune"})
    assert moved.status_code == 200, moved.text
    for action, body in (("acknowledge", {}), ("resolve", {"resolution": "repaired"})):
        done = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/{action}",
                           staff(second), json=body)
        assert done.status_code == 200, done.text
    wait_until(lambda: system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                                   case["citizen_token"]).json()["status"] == "resolved",
               what="the citizen sees the resolution")
    citizen(system, case, "feedback", {"satisfied": False, "rating": 1})
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_events WHERE originator_id = %s AND topic LIKE %s",
        (case["case_id"], "%CaseEscalated")), what="the appeal escalated")
    text = ourvoice(system, "audit", "history", case["tracking_code"])
    assert text.returncode == 0, text.stderr
    assert "transferred from Tuol Tumpung Ti Pir Commune Office (commune-120109) to Tuol " \
           "Tumpung Ti Muoy Commune Office (commune-120110): \"the pipe is in the next " \
           "commune\"" in text.stdout, text.stdout
    assert "escalated from Tuol Tumpung Ti Muoy Commune Office (commune-120110) to Chamkar " \
           "Mon District Ombudsman (district-ombudsman-1201): the citizen appealed" \
        in text.stdout, text.stdout
    assert "routed to Tuol Tumpung Ti Pir Commune Office (commune-120109)" in text.stdout


def test_verify_names_the_case_of_a_broken_notice(system, worked):
    """A notice is a stream of its own: the case is found through notifications' index
    of its case streams."""
    target = system.query(
        "SELECT e.notification_id, e.state FROM notifications_events e"
        " JOIN notifications_case_streams s ON s.stream_id = e.originator_id"
        " WHERE s.case_id = %s AND e.originator_id <> %s"
        " ORDER BY e.notification_id LIMIT 1", (worked["case_id"], worked["case_id"]))[0]
    system.query("UPDATE notifications_events SET state = state || '\\x00'::bytea"
                 " WHERE notification_id = %s RETURNING notification_id",
                 (target["notification_id"],))
    try:
        broken = ourvoice(system, "audit", "verify")
        assert broken.returncode == 1
        assert f"notifications: BROKEN at notification {target['notification_id']}: the event" \
               f" or its link was altered (case {worked['tracking_code']})" in broken.stdout, \
            broken.stdout
    finally:
        def restored():
            try:
                return system.query("UPDATE notifications_events SET state = %s WHERE "
                                    "notification_id = %s RETURNING notification_id",
                                    (target["state"], target["notification_id"]))
            except psycopg.OperationalError:
                return None

        wait_until(restored, timeout=120, interval=1, what="the notice restored")
    assert ourvoice(system, "audit", "verify").returncode == 0


def test_a_service_that_cannot_give_its_part_makes_it_503_and_the_cli_reads_the_stores(
        system, worked):
    """Never a history with a gap: a service that does not answer is named; the CLI reads
    each service's part from its store, with the services stopped."""
    whole = complete_history(system, worked).json()
    system.stop("notifications")
    try:
        response = history(system, worked)
        assert response.status_code == 503, response.text
        assert "notifications" in response.text and "intake" not in response.text
        done = ourvoice(system, "audit", "history", worked["tracking_code"], "--json")
        assert done.returncode == 0, done.stderr
        read = json.loads(done.stdout)["events"]
        # Notifications may record another try of a notice before it stops: such an event
        # comes after all that the whole history had, and is the only difference.
        assert [e for e in read if e in whole["events"]] == whole["events"]
        last = max(e["occurred_at"] for e in whole["events"])
        assert all(e["store"] == "notifications" and e["occurred_at"] > last
                   for e in read if e not in whole["events"])
    finally:
        system.start("notifications")
    again = complete_history(system, worked).json()["events"]
    assert [e for e in again if e in whole["events"]] == whole["events"]
