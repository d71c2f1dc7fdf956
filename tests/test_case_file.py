"""The case file, the office queue, assignment and standard replies, through the real
services: who reads what, every reading on record, a queue an office can page through."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.system import act, citizen_view, complaint, submit, wait_until

pytestmark = pytest.mark.e2e

# Water supply and civil registration keep deadlines of an hour or more; local roads
# breach after three seconds at every level, so such a case reaches the national
# ombudsman and stays overdue there.
SYSTEM_ENV = {
    "OURVOICE_SLA_POLICIES": str(Path(__file__).parent / "data" / "sla-seconds.yaml"),
    "OURVOICE_SWEEP_SECONDS": "0.2",
}
DESCRIPTION = "ទឹកស្អាតមិនហូរអស់រយៈពេលបីថ្ងៃហើយ។\nក្រុមគ្រួសារ ១២ នៅភូមិថ្មីរងផលប៉ះពាល់។"
PHONE = "012 345 678"


def routed_to(system, case, office):
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE case_id = %s AND office_id = %s",
        (case["case_id"], office)), what=f"case at {office}")
    return case


def new_case(system, office="commune-120101", **overrides):
    body = complaint(**overrides)
    return routed_to(system, submit(system, body), office)


def case_file(system, case_id, token):
    return system.call("GET", "routing", f"/v1/cases/{case_id}", token)






def queue(system, office, token, **params):
    response = system.call("GET", "routing", f"/v1/offices/{office}/queue", token,
                           params=params)
    assert response.status_code == 200, response.text
    return response.json()


def whole_queue(system, office, token, limit=3, **params):
    """Every page of a queue: the cases in order, and the totals each page gave."""
    cases, totals, cursor = [], [], None
    while True:
        page = queue(system, office, token, limit=limit, **params,
                     **({"cursor": cursor} if cursor else {}))
        assert len(page["cases"]) <= limit
        cases += page["cases"]
        totals.append(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            return cases, totals


def test_the_office_reads_the_whole_case_file_but_never_contact_data_nor_gender(system):
    staff = system.principal("staff", "commune-120101")
    case = new_case(system, description=DESCRIPTION, complainant={
        "anonymous": False, "name": "Sok Dara", "phone": PHONE, "gender": "female",
        "consent_to_contact": True})
    act(system, case, "acknowledge", staff)
    act(system, case, "notes", staff, {"text": "Called the water company"})
    act(system, case, "request-info", staff, {"question": "ភូមិណា?"})
    wait_until(lambda: citizen_view(system, case)["status"] == "waiting-for-citizen",
               what="the question reaches the citizen")
    answered = system.call("POST", "intake", f"/v1/cases/{case['tracking_code']}/messages",
                           case["citizen_token"], json={"text": "ភូមិថ្មី ជិតវត្ត"})
    assert answered.status_code == 200, answered.text
    wait_until(lambda: case_file(system, case["case_id"], staff).json()["status"]
               == "acknowledged", what="the answer restarts the clock")
    act(system, case, "resolve", staff, {"resolution": "The pipe was repaired"})

    response = case_file(system, case["case_id"], staff)
    assert response.status_code == 200, response.text
    file = response.json()
    assert file["case_id"] == case["case_id"] and file["tracking_code"] == case["tracking_code"]
    assert (file["type"], file["category"], file["language"], file["channel"]) == (
        "complaint", "water-supply", "km", "app")
    assert file["category_label"]["en"] and file["category_label"]["km"]
    assert file["sensitive"] is False and file["words_hidden"] is False
    assert file["status"] == "resolved"
    assert file["office"]["id"] == "commune-120101"
    assert "Tonle Basak" in file["office"]["name_en"] and "ទន្លេបាសាក់" in file["office"]["name_km"]
    assert file["place"]["commune"] == {"code": "120101", "name_en": "Tonle Basak",
                                        "name_km": "ទន្លេបាសាក់"}
    assert file["place"]["district"]["code"] == "1201" and file["place"]["province"]["code"] == "12"
    assert file["place"]["province"]["name_km"]
    assert {d["name"]: d["state"] for d in file["deadlines"]} == {"acknowledge": "met",
                                                                  "resolve": "met"}
    assert file["description"] == DESCRIPTION
    assert [(m["text"], m["answers_request"]) for m in file["messages"]] == [
        ("ភូមិថ្មី ជិតវត្ត", True)]
    assert [q["text"] for q in file["questions"]] == ["ភូមិណា?"]
    assert [n["text"] for n in file["notes"]] == ["Called the water company"]
    assert file["notes"][0]["by"] and file["notes"][0]["at"]
    assert file["resolution"]["text"] == "The pipe was repaired"
    assert file["transfers"] == [] and file["escalations"] == [] and file["findings"] is None
    kinds = [entry["event_type"] for entry in file["timeline"]]
    assert kinds[:2] == ["CaseSubmitted", "CaseRouted"]
    assert {"CaseAcknowledged", "CaseNoteAdded", "InformationRequested", "InformationProvided",
            "CaseResolved", "CaseFileOpened"} <= set(kinds)
    assert file["timeline"] == sorted(file["timeline"], key=lambda e: e["at"])
    assert file["can"] == ["note"]
    assert isinstance(file["version"], int) and file["version"] > 5
    text = response.text
    for private in (PHONE, "Sok Dara", "female", "gender", "phone"):
        assert private not in text, f"{private} in the case file"


def test_who_may_read_a_case_file(system):
    case = new_case(system)
    other = submit(system)
    allowed = {"staff of the office": system.principal("staff", "commune-120101"),
               "auditor": system.principal("auditor"), "admin": system.principal("admin")}
    refused = {"staff of another office": system.principal("staff", "commune-120109"),
               "ombudsman above": system.principal("ombudsman", "district-ombudsman-1201"),
               "the citizen of the case": case["citizen_token"],
               "another citizen": other["citizen_token"]}
    for who, token in allowed.items():
        response = case_file(system, case["case_id"], token)
        assert response.status_code == 200, (who, response.text)
    for who, token in refused.items():
        assert case_file(system, case["case_id"], token).status_code == 403, who
    assert case_file(system, case["case_id"], None).status_code == 401
    assert case_file(system, case["case_id"], allowed["auditor"]).json()["can"] == []
    assert case_file(system, "not-a-case", allowed["auditor"]).status_code == 404
    staff = allowed["staff of the office"]
    assert case_file(system, case["case_id"], staff).json()["can"] == [
        "acknowledge", "note", "assign", "transfer", "escalate"]


def test_a_case_file_is_found_by_its_tracking_code_typed_loosely(system):
    staff = system.principal("staff", "commune-120101")
    case = new_case(system)
    code = case["tracking_code"]
    for typed in (code, code.lower(), code.replace("-", " "), f"  {code[:3]} {code[3:].lower()} ",
                  code.replace("-", "")):
        response = system.call("GET", "routing", "/v1/cases", staff,
                               params={"tracking_code": typed})
        assert response.status_code == 200, (typed, response.text)
        assert response.json()["case_id"] == case["case_id"]
    assert system.call("GET", "routing", "/v1/cases", staff,
                       params={"tracking_code": "22222-22222"}).status_code == 404
    assert system.call("GET", "routing", "/v1/cases", staff,
                       params={"tracking_code": "not a code"}).status_code == 404
    assert system.call("GET", "routing", "/v1/cases", staff).status_code == 400
    # Found by code is found for the same readers only.
    stranger = system.principal("staff", "commune-120109")
    assert system.call("GET", "routing", "/v1/cases", stranger,
                       params={"tracking_code": code}).status_code == 403


def test_a_sensitive_case_s_words_are_the_ombudsman_s_alone(system):
    office = "district-ombudsman-1201"
    case = new_case(system, office, category="gender-based-violence",
                    description="He hit me again\nlast night")
    ombudsman = system.principal("ombudsman", office)
    act(system, case, "acknowledge", ombudsman)
    act(system, case, "notes", ombudsman, {"text": "met her at the commune hall"})
    act(system, case, "request-info", ombudsman, {"question": "Are you safe tonight?"})

    seen = case_file(system, case["case_id"], ombudsman).json()
    assert seen["words_hidden"] is False and seen["sensitive"] is True
    assert seen["description"] == "He hit me again\nlast night"
    assert seen["category"] == "gender-based-violence"
    assert seen["questions"][0]["text"] == "Are you safe tonight?"
    assert seen["notes"][0]["text"] == "met her at the commune hall"
    for reader in (system.principal("staff", office), system.principal("auditor"),
                   system.principal("admin")):
        response = case_file(system, case["case_id"], reader)
        assert response.status_code == 200, response.text
        hidden = response.json()
        assert hidden["words_hidden"] is True
        assert hidden["description"] is None
        assert [q["text"] for q in hidden["questions"]] == [None]
        assert [n["text"] for n in hidden["notes"]] == [None]
        for words in ("hit me", "safe tonight", "commune hall"):
            assert words not in response.text
    lines = {role: next(c["first_line"] for c in queue(system, office, token)["cases"]
                        if c["case_id"] == case["case_id"])
             for role, token in (("ombudsman", ombudsman),
                                 ("staff", system.principal("staff", office)),
                                 ("auditor", system.principal("auditor")))}
    assert lines == {"ombudsman": "He hit me again", "staff": None, "auditor": None}


def test_access_to_the_case_file_moves_with_a_transfer(system):
    here, there = system.principal("staff", "commune-120101"), system.principal("staff",
                                                                                "commune-120110")
    case = new_case(system)
    assert case_file(system, case["case_id"], there).status_code == 403
    act(system, case, "transfer", here, {"office_id": "commune-120110",
                                         "reason": "the village belongs to the next commune"})
    assert case_file(system, case["case_id"], here).status_code == 403
    file = case_file(system, case["case_id"], there).json()
    assert file["office"]["id"] == "commune-120110"
    assert [(t["from_office_id"], t["office_id"], t["reason"]) for t in file["transfers"]] == [
        ("commune-120101", "commune-120110", "the village belongs to the next commune")]
    # The office it left can no longer act on it nor read it in its queue.
    act(system, case, "acknowledge", here, status=403)
    act(system, case, "assign", here, {"staff_id": "anyone"}, status=403)
    assert system.call("GET", "routing", "/v1/offices/commune-120110/queue",
                       here).status_code == 403
    routed_to(system, case, "commune-120110")
    assert case["case_id"] not in [c["case_id"] for c in queue(
        system, "commune-120101", system.principal("auditor"), limit=500)["cases"]]


def test_every_opening_is_on_record_for_the_citizen_and_the_auditor(system):
    staff = system.principal("staff", "commune-120101")
    case = new_case(system)
    assert case_file(system, case["case_id"], staff).status_code == 200
    assert case_file(system, case["case_id"], system.principal("auditor")).status_code == 200
    opened = wait_until(lambda: [e for e in citizen_view(system, case)["timeline"]
                                 if e["event_type"] == "CaseFileOpened"] or None,
                        what="the opening in the citizen's timeline")
    wait_until(lambda: len([e for e in citizen_view(system, case)["timeline"]
                            if e["event_type"] == "CaseFileOpened"]) == 2, what="both openings")
    opened = [e for e in citizen_view(system, case)["timeline"]
              if e["event_type"] == "CaseFileOpened"]
    assert opened[0]["title"] == "ការិយាល័យបានបើកមើលឯកសារករណីរបស់អ្នក"  # a Khmer case
    assert opened[0]["detail"] == "មន្ត្រីនៃ សាលាឃុំ/សង្កាត់ ទន្លេបាសាក់"
    assert opened[1]["detail"] == "សវនករ"
    # The public event names the role and office, never who it was.
    staff_id = system.scalar("SELECT id::text FROM ourvoice_principals WHERE role = 'staff' "
                             "AND office_id = 'commune-120101' ORDER BY created_at LIMIT 1")
    assert staff_id not in json.dumps(citizen_view(system, case))

    auditor = system.principal("auditor")
    history = wait_until(lambda: (r := system.call(
        "GET", "reporting", f"/v1/audit/cases/{case['tracking_code']}", auditor)).status_code
        == 200 and r.json(), what="the audit history")
    openings = [e for e in history["events"] if e["event_type"] == "CaseFileOpened"]
    assert [(e["actor"]["role"], e["actor"]["office_id"]) for e in openings] == [
        ("staff", "commune-120101"), ("auditor", None)]
    assert openings[0]["data"] == {"role": "staff", "office_id": "commune-120101"}
    text = system.ourvoice("audit", "history", case["tracking_code"]).stdout
    assert "CaseFileOpened" in text and "staff of commune-120101" in text

    # Nobody is notified of a reading, and reports count nothing more for it.
    wait_until(system.settled, what="reporting has every event")
    assert system.scalar("SELECT count(*) FROM notifications_outbox "
                         "WHERE about_type = 'CaseFileOpened'") == 0
    before = system.query("SELECT * FROM reporting_cases WHERE case_id = %s", (case["case_id"],))
    assert case_file(system, case["case_id"], staff).status_code == 200
    wait_until(system.settled, what="reporting has the third opening")
    assert system.query("SELECT * FROM reporting_cases WHERE case_id = %s",
                        (case["case_id"],)) == before


def test_readings_at_the_same_moment_are_each_recorded_and_hold_up_no_one(system):
    staff = system.principal("staff", "commune-120101")
    case = new_case(system)
    readers = 8

    def read(_):
        return case_file(system, case["case_id"], staff)

    def note(n):
        return system.call("POST", "routing", f"/v1/cases/{case['case_id']}/notes", staff,
                           json={"text": f"note {n}"})

    with ThreadPoolExecutor(readers + 3) as pool:
        readings = [pool.submit(read, n) for n in range(readers)]
        notes = [pool.submit(note, n) for n in range(3)]
        answers = [r.result() for r in readings]
        noted = [n.result() for n in notes]
    assert [a.status_code for a in answers] == [200] * readers
    assert system.scalar("SELECT count(*) FROM routing_events WHERE originator_id = %s "
                         "AND topic LIKE '%%CaseFileOpened'", (case["case_id"],)) == readers
    assert len({a.json()["version"] for a in answers}) == readers, "each after its own reading"
    # A reading changes nothing an office decided on: its commands are not refused for it
    # (two notes at once may still collide with each other: a 409 says so).
    assert all(n.status_code in (200, 409) for n in noted), [n.text for n in noted]
    assert any(n.status_code == 200 for n in noted)
    for n in noted:
        if n.status_code == 409:
            assert "case" in n.json()["errors"]
    # The citizen's answer is taken however often the file is read meanwhile.
    act(system, case, "acknowledge", staff)
    act(system, case, "request-info", staff, {"question": "Which village?"})
    wait_until(lambda: citizen_view(system, case)["status"] == "waiting-for-citizen",
               what="the question reaches the citizen")
    with ThreadPoolExecutor(4) as pool:
        reading = [pool.submit(read, n) for n in range(40)]
        answered = system.call("POST", "intake", f"/v1/cases/{case['tracking_code']}/messages",
                               case["citizen_token"], json={"text": "Phum Thmei"})
        assert all(r.result().status_code == 200 for r in reading)
    assert answered.status_code == 200
    wait_until(lambda: case_file(system, case["case_id"], staff).json()["status"]
               == "acknowledged", what="the answer restarts the clock")


def test_assignment_to_oneself_or_a_colleague_and_the_queue_of_my_cases(system):
    office = "commune-120111"
    staff = system.principal("staff", office)
    added = system.ourvoice("staff", "add", "--name", "Chan Dara", "--username", "chan.dara",
                            "--office", office, "--role", "staff")
    assert added.returncode == 0, added.stderr
    system.ourvoice("staff", "add", "--name", "Keo Lina", "--username", "keo.lina",
                    "--office", "commune-120112", "--role", "staff")
    mine, theirs, nobody_s = (new_case(system, office, location={"commune": "120111"})
                              for _ in range(3))
    unknown = act(system, mine, "assign", staff, {"staff_id": "ignored"}, status=400)
    me = system.scalar("SELECT id::text FROM ourvoice_principals WHERE role = 'staff' "
                       "AND office_id = %s", (office,))
    assert act(system, mine, "assign", staff, {"staff_id": me})["assignee"] == me
    assert act(system, theirs, "assign", staff, {"staff_id": "chan.dara"})["assignee"] == "chan.dara"
    assert unknown["errors"]["staff_id"]
    for wrong in ("keo.lina", "nobody.here"):  # another office's account, no account
        refused = system.call("POST", "routing", f"/v1/cases/{nobody_s['case_id']}/assign",
                              staff, json={"staff_id": wrong})
        assert refused.status_code == 400 and "staff_id" in refused.json()["errors"]
    assert system.call("POST", "routing", f"/v1/cases/{nobody_s['case_id']}/assign", staff,
                       json={}).status_code == 400
    stranger = system.principal("staff", "commune-120112")
    assert system.call("POST", "routing", f"/v1/cases/{nobody_s['case_id']}/assign", stranger,
                       json={"staff_id": "keo.lina"}).status_code == 403

    def ids(**params):
        return {c["case_id"]: c["assignee"] for c in queue(system, office, staff, **params)["cases"]}

    wait_until(lambda: ids().get(theirs["case_id"]) == "chan.dara", what="assignee in the queue")
    assert ids(assignee="me") == {mine["case_id"]: me}
    assert ids(assignee="chan.dara") == {theirs["case_id"]: "chan.dara"}
    assert ids()[nobody_s["case_id"]] is None
    assert case_file(system, theirs["case_id"], staff).json()["assignee"] == "chan.dara"


def test_the_queue_pages_without_duplicates_or_gaps(system):
    office = "commune-120201"
    cases = [new_case(system, office, location={"commune": "120201"},
                      description=f"Case number {n}\nsecond line") for n in range(7)]
    auditor = system.principal("auditor")
    seen, totals = whole_queue(system, office, auditor, limit=3)
    assert totals == [7, 7, 7]
    assert len(seen) == 7 and {c["case_id"] for c in seen} == {c["case_id"] for c in cases}
    dues = [c["acknowledge_due"] for c in seen]
    assert dues == sorted(dues), "nearest deadline first"
    assert {c["first_line"] for c in seen} == {f"Case number {n}" for n in range(7)}
    first = queue(system, office, auditor)
    assert first["next_cursor"] is None and len(first["cases"]) == 7
    assert first["counts"] == {"routed": 7, "acknowledged": 0, "waiting-for-citizen": 0,
                               "escalated": 0}
    for bad in ({"cursor": "bm90LWEtY3Vyc29y"}, {"limit": 0}, {"limit": 501},
                {"status": "resolved"}, {"overdue": "perhaps"}, {"type": "x"},
                {"due_within_hours": -1}, {"colour": "red"}):
        response = system.call("GET", "routing", f"/v1/offices/{office}/queue", auditor,
                               params=bad)
        assert response.status_code == 400, (bad, response.text)
        assert set(response.json()["errors"]) <= {*bad, "_"}


def test_each_filter_of_the_queue(system):
    office = "commune-120202"
    staff = system.principal("staff", office)
    place = {"location": {"commune": "120202"}}
    routed = new_case(system, office, **place)
    acknowledged = new_case(system, office, **place, type="support",
                            category="civil-registration")
    waiting = new_case(system, office, **place, type="information")
    act(system, acknowledged, "acknowledge", staff)
    act(system, waiting, "acknowledge", staff)
    act(system, waiting, "request-info", staff, {"question": "?"})
    wait_until(lambda: queue(system, office, staff)["counts"]["waiting-for-citizen"] == 1,
               what="the queue has caught up")

    def ids(**params):
        page = queue(system, office, staff, **params)
        assert page["total"] == len(page["cases"])
        return {c["case_id"] for c in page["cases"]}

    assert ids() == {routed["case_id"], acknowledged["case_id"], waiting["case_id"]}
    assert ids(status="acknowledged") == {acknowledged["case_id"]}
    assert ids(status="waiting-for-citizen") == {waiting["case_id"]}
    assert ids(type="support") == {acknowledged["case_id"]}
    assert ids(category="civil-registration") == {acknowledged["case_id"]}
    assert ids(category="water-supply", type="complaint") == {routed["case_id"]}
    # Routed: acknowledge within the hour; acknowledged: resolve within ten days; waiting:
    # no clock running.
    assert ids(due_within_hours=2) == {routed["case_id"]}
    assert ids(due_within_hours=24 * 11) == {routed["case_id"], acknowledged["case_id"]}
    assert ids(overdue="true") == set()
    assert queue(system, office, staff, type="support")["counts"]["acknowledged"] == 1

    late = submit(system, complaint(category="local-roads"))
    national = "national-ombudsman"
    wait_until(lambda: any(c["case_id"] == late["case_id"] and c["overdue"] for c in queue(
        system, national, system.principal("auditor"), overdue="true")["cases"]),
        timeout=60, what="a case overdue at the national ombudsman")
    assert late["case_id"] not in {c["case_id"] for c in queue(
        system, national, system.principal("auditor"), overdue="false")["cases"]}


def test_standard_replies_reach_the_citizen_in_the_language_of_their_case(system):
    staff = system.principal("staff", "commune-120101")
    listed = system.call("GET", "routing", "/v1/reply-templates", staff)
    assert listed.status_code == 200, listed.text
    templates = {t["id"]: t for t in listed.json()}
    kinds = [t["kind"] for t in templates.values()]
    assert kinds.count("question") >= 4 and kinds.count("resolution") >= 3
    for template in templates.values():
        assert all(template[part][lang] for part in ("title", "text") for lang in ("km", "en"))
    assert system.call("GET", "routing", "/v1/reply-templates").status_code == 401

    khmer, english = new_case(system), new_case(system, language="en")
    for case in (khmer, english):
        act(system, case, "acknowledge", staff)
        for wrong in ({"template": "no-such-reply"}, {"template": "official-fee"},
                      {"question": "?", "template": "ask-document"}, {}):
            response = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/request-info",
                                   staff, json=wrong)
            assert response.status_code == 400, (wrong, response.text)
        act(system, case, "request-info", staff, {"template": "ask-document"})
    for case, language in ((khmer, "km"), (english, "en")):
        expected = templates["ask-document"]["text"][language]
        wait_until(lambda c=case, e=expected: citizen_view(system, c)["question"] == e,
                   what=f"the {language} question in the citizen's view")
        assert case_file(system, case["case_id"], staff).json()["questions"][0]["text"] == expected
    answered = system.call("POST", "intake", f"/v1/cases/{english['tracking_code']}/messages",
                           english["citizen_token"], json={"text": "No. 1234, 3 March 2025"})
    assert answered.status_code == 200
    wait_until(lambda: case_file(system, english["case_id"], staff).json()["status"]
               == "acknowledged", what="the clock restarted")
    wrong = system.call("POST", "routing", f"/v1/cases/{english['case_id']}/resolve", staff,
                        json={"template": "ask-document"})
    assert wrong.status_code == 400 and "template" in wrong.json()["errors"]
    act(system, english, "resolve", staff, {"template": "resolved-at-counter"})
    expected = templates["resolved-at-counter"]["text"]["en"]
    wait_until(lambda: citizen_view(system, english)["resolution"] == expected,
               what="the English resolution in the citizen's view")


def test_offices_are_found_by_part_of_their_khmer_or_english_name(system):
    def found(q):
        response = system.call("GET", "routing", "/v1/offices", params={"q": q})
        assert response.status_code == 200, response.text
        return {office["id"] for office in response.json()}

    assert "commune-120101" in found("tonle BASAK")
    assert "commune-120101" in found("ទន្លេបាសាក់")
    assert found("no office is called this") == set()
    assert system.call("GET", "routing", "/v1/offices", params={"q": ""}).status_code == 400
