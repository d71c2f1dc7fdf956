"""Reports through the real services: volumes by every dimension, gender from intake,
deadlines met and missed, times, satisfaction and service evaluations, escalations and
the ombudsman, filters, CSV, and the small cells offices and the public never see.

Each test works in a province of its own and filters the report by it, so the tests of
this module do not count each other's cases."""

import csv
import io
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.system import ROOT, complaint, submit, wait_until

pytestmark = pytest.mark.e2e

# Most categories must be acknowledged within three seconds here (and breach, then
# escalate, by themselves); water supply and a few others keep an hour, so they can be met
# on time; an ombudsman has a minute, time enough to take up an appeal on a busy machine.
POLICIES = Path(tempfile.mkdtemp(prefix="ourvoice-reporting-")) / "sla.yaml"
POLICIES.write_text("""
default: {acknowledge: PT3S, resolve: PT30S, warn_at: 0.5, calendar: 24x7}
categories:
  water-supply: {acknowledge: PT1H, resolve: P10D}
  civil-registration: {acknowledge: PT1H, resolve: P10D}
  business-licences: {acknowledge: PT1H, resolve: P10D}
ombudsman: {acknowledge: PT1M, resolve: PT1H}
""", encoding="utf-8")
# Reporting's calendar runs 40 days ahead: this month reads as ended, so public.
SYSTEM_ENV = {"OURVOICE_SLA_POLICIES": str(POLICIES), "OURVOICE_SWEEP_SECONDS": "0.2",
              "OURVOICE_REPORTS_CLOCK_DAYS": "40"}
_TODAY = datetime.now(UTC).astimezone(ZoneInfo("Asia/Phnom_Penh")).date()
MONTH = {"from": _TODAY.replace(day=1).isoformat(),
         "to": (_TODAY.replace(day=1) + timedelta(days=32)).replace(day=1).isoformat()}


def report(system, token=None, **filters) -> dict:
    response = system.call("GET", "reporting", "/v1/reports/summary", token, params=filters)
    assert response.status_code == 200, response.text
    return response.json()


def auditors_report(system, **filters) -> dict:
    return report(system, system.principal("auditor"), **filters)


def settled_report(system, expected_total, **filters) -> dict:
    wait_until(system.settled, what="every event reached reporting")
    return wait_until(lambda: (r := auditors_report(system, **filters))["total"] == expected_total
                      and "unrouted" not in r["by_office"] and r,
                      what=f"{expected_total} cases counted, each at its office")


def case_in(commune, gender="female", **overrides) -> dict:
    return complaint(location={"commune": commune},
                     complainant={"anonymous": True, "gender": gender}, **overrides)


def act(system, case, action, office, role="staff", body=None):
    response = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/{action}",
                           system.principal(role, office), json=body or {})
    assert response.status_code in (200, 201), response.text
    return response.json()


def routed_to(system, case, office):
    def there():
        queue = system.call("GET", "routing", f"/v1/offices/{office}/queue",
                            system.principal("auditor"), params={"limit": 500}).json()["cases"]
        return any(c["tracking_code"] == case["tracking_code"] for c in queue)

    wait_until(there, what=f"{case['tracking_code']} at {office}")


def citizen(system, case, action, body):
    response = system.call("POST", "intake", f"/v1/cases/{case['tracking_code']}/{action}",
                           case["citizen_token"], json=body)
    assert response.status_code == 200, response.text


def test_volumes_by_type_category_channel_status_area_office_and_period(system):
    # Categories with deadlines of an hour here: nothing escalates while the test looks.
    submit(system, case_in("030101"))
    submit(system, case_in("030101", category="civil-registration"))
    submit(system, case_in("030201", type="support", category="business-licences"))
    submit(system, case_in("030201", type="evaluation", category="business-licences",
                           rating=2))
    form = {"api_key": "open311-development-key", "service_code": "water-supply",
            "address_id": "030102", "description": "no water"}
    assert requests.post(system.url("intake", "/open311/v2/requests.json"), data=form,
                         timeout=10).status_code == 201

    found = settled_report(system, 5, province="03")
    assert found["suppressed"] is False
    assert found["by_type"] == {"complaint": 3, "evaluation": 1, "support": 1}
    assert found["by_category"] == {"business-licences": 2, "civil-registration": 1,
                                    "water-supply": 2}
    assert found["by_channel"] == {"app": 4, "open311": 1, "sms": 0, "telegram": 0,
                                   "office-desk": 0}
    assert found["by_province"] == {"03": 5}
    assert found["by_district"] == {"0301": 3, "0302": 2}
    assert found["by_office"] == {"commune-030101": 2, "commune-030102": 1, "owso-0302": 2}
    assert sum(found["by_status"].values()) == 5
    assert list(found["by_period"].values()) == [5] and found["period"] == "month"
    assert found["evaluations"]["by_office"] == {"owso-0302": {"evaluations": 1,
                                                               "mean_rating": 2.0}}
    assert auditors_report(system, district="0302")["total"] == 2
    assert auditors_report(system, office_id="owso-0302")["by_type"] == {"evaluation": 1,
                                                                         "support": 1}
    by_day = auditors_report(system, province="03", period="day")["by_period"]
    assert sum(by_day.values()) == 5 and all(len(day) == 10 for day in by_day)
    # Periods are Cambodian calendar days: nothing was submitted after tomorrow there.
    assert auditors_report(system, province="03", **{"from": "2099-01-01"})["total"] == 0
    assert auditors_report(system, province="03", to="2000-01-01")["total"] == 0
    assert auditors_report(system, province="03", **{"from": "2000-01-01",
                                                     "to": "2099-01-01"})["total"] == 5


def test_filters_are_validated(system):
    for bad in ({"province": "3"}, {"district": "03011"}, {"office_id": "nowhere-9"},
                {"from": "yesterday"}, {"period": "fortnight"}, {"colour": "red"},
                {"from": "2026-02-01", "to": "2026-01-01"}):
        response = system.call("GET", "reporting", "/v1/reports/summary", params=bad)
        assert response.status_code == 400, (bad, response.text)
        assert set(response.json()["errors"]) <= {*bad, "_"}, response.text
    forged = system.call("GET", "reporting", "/v1/reports/summary", "p1.forged")
    assert forged.status_code == 401


def test_gender_comes_from_intake_and_small_cells_are_hidden_from_offices_and_the_public(system):
    for gender, n in (("female", 6), ("male", 2), ("other", 1)):
        for _ in range(n):
            submit(system, case_in("080101", gender=gender))
    submit(system, case_in("080201", gender="undisclosed"))
    whole = settled_report(system, 10, province="08")
    gender = wait_until(lambda: (g := auditors_report(system, province="08")["gender"])
                        and sum(g["totals"].values()) == 10 and g, what="intake counted")
    assert gender["totals"] == {"female": 6, "male": 2, "other": 1, "undisclosed": 1}
    assert gender["by_office"]["commune-080101"] == {"female": 6, "male": 2, "other": 1,
                                                     "undisclosed": 0}
    assert whole["by_office"] == {"commune-080101": 9, "commune-080201": 1}

    public = report(system, province="08", **MONTH)
    assert public["suppressed"] is True
    # 2 + 1 + 1 would follow from 6 beside the total: so the women's count goes too.
    assert public["gender"]["totals"] == dict.fromkeys(("female", "male", "other",
                                                        "undisclosed"))
    # 10 = 9 + 1: the one case's office alone would follow from the other's.
    assert public["by_office"] == {"commune-080101": None, "commune-080201": None}
    assert public["total"] in (None, 10)
    # The office's own staff see this month so far, by whole days, suppressed alike.
    staff = report(system, system.principal("staff", "commune-080101"),
                   office_id="commune-080101", **MONTH)
    assert staff["total"] == 9 and staff["gender"]["totals"] == {
        "female": None, "male": None, "other": None, "undisclosed": 0}
    # Another office's figures are public figures: whole months only.
    refused = system.call("GET", "reporting", "/v1/reports/summary",
                          system.principal("staff", "commune-080101"),
                          params={"office_id": "commune-080201", "from": _TODAY.isoformat()})
    assert refused.status_code == 400 and "from" in refused.json()["errors"]
    small = report(system, office_id="commune-080201", **MONTH)
    assert small["total"] is None and small["by_type"] == {"complaint": None}
    assert auditors_report(system, office_id="commune-080201")["total"] == 1

    table = system.call("GET", "reporting", "/v1/reports/summary.csv",
                        params={"province": "08", **MONTH})
    assert table.status_code == 200 and table.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    cell = {(r["section"], r["group"], r["measure"]): r["value"] for r in rows}
    assert cell[("gender", "totals", "female")] == "suppressed"
    assert cell[("by_office", "", "commune-080201")] == "suppressed"
    assert not any(value in ("1", "2", "3", "4") for value in cell.values())
    whole_csv = system.call("GET", "reporting", "/v1/reports/summary.csv",
                            system.principal("admin"), params={"province": "08"}).text
    assert ",suppressed" not in whole_csv and ",totals,male,2" in whole_csv


def test_deadlines_times_satisfaction_escalations_and_the_ombudsman(system):
    office = "commune-150101"
    met = submit(system, case_in("150101"))  # water supply: an hour to acknowledge
    unhappy = submit(system, case_in("150101"))
    late = submit(system, case_in("150101", category="local-roads"))  # three seconds
    for case in (met, unhappy):
        routed_to(system, case, office)
    for case in (met, unhappy):
        act(system, case, "acknowledge", office)
        act(system, case, "resolve", office, body={"resolution": "repaired"})
    for case in (met, unhappy):  # feedback is taken once the citizen's view has the resolution
        wait_until(lambda case=case: system.call(
            "GET", "intake", f"/v1/cases/{case['tracking_code']}",
            case["citizen_token"]).json()["status"] == "resolved", what="resolved for the citizen")
    citizen(system, met, "feedback", {"satisfied": True, "rating": 5})
    citizen(system, unhappy, "feedback", {"satisfied": False, "rating": 1})
    ombudsman = "district-ombudsman-1501"
    routed_to(system, unhappy, ombudsman)  # the appeal
    act(system, unhappy, "acknowledge", ombudsman, role="ombudsman")
    act(system, unhappy, "findings", ombudsman, role="ombudsman",
        body={"findings": "the repair was partial", "recommendation": "finish it"})
    act(system, unhappy, "close", ombudsman, role="ombudsman")
    wait_until(lambda: system.scalar(  # breached, then escalated by itself
        "SELECT count(*) FROM routing_events WHERE originator_id = %s AND topic LIKE %s",
        (late["case_id"], "%CaseEscalated")), what="the late case escalated")

    def decided():
        wait_until(system.settled, what="settled")
        found = auditors_report(system, province="15")
        return found["ombudsman"]["closed"] == 1 and found["escalations"]["total"] >= 2 \
            and found["deadlines"]["by_office"].get(office, {}).get("acknowledged_late") \
            and found

    found = wait_until(decided, timeout=60, what="every outcome reported")
    at_office = found["deadlines"]["by_office"][office]
    assert at_office["cases"] == 3
    assert (at_office["acknowledged_on_time"], at_office["acknowledged_late"]) == (2, 1)
    assert at_office["acknowledged_on_time_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert (at_office["resolved_on_time"], at_office["resolved_late"]) == (2, 0)
    assert found["deadlines"]["by_province"]["15"]["acknowledged_late"] >= 1
    assert found["time_to_acknowledge"]["cases"] == 2
    assert 0 < found["time_to_acknowledge"]["median_seconds"] \
        <= found["time_to_acknowledge"]["p90_seconds"] < 60
    assert found["time_to_resolve"]["cases"] == 2
    assert found["satisfaction"]["by_office"][office] == {
        "responses": 2, "satisfied": 1, "mean_rating": 3.0, "satisfied_share": 0.5}
    assert found["escalations"]["by_reason"]["appeal"] == 1
    assert found["escalations"]["by_reason"]["breach"] == 1
    assert found["ombudsman"]["appeals"] == 1
    assert found["ombudsman"]["by_office"][ombudsman] == {"received": 2, "findings": 1,
                                                         "closed": 1}
    assert found["by_status"]["closed"] == 2  # one by the satisfied citizen, one by findings
    # Three cases at one office: every figure of that office is hidden from the public,
    # and with them the shares, the mean rating and the times they rest on.
    public = report(system, office_id=office, **MONTH)
    deadlines = public["deadlines"]
    assert (deadlines["acknowledged_on_time"], deadlines["acknowledged_late"],
            deadlines["resolved_on_time"], deadlines["resolved_late"]) == (None, None, None, 0)
    assert deadlines["acknowledged_on_time_share"] is deadlines["resolved_on_time_share"] is None
    assert set(public["satisfaction"].values()) == {None}
    assert public["time_to_acknowledge"] == {"cases": None, "median_seconds": None,
                                             "p90_seconds": None}
    province = report(system, province="15", **MONTH)
    assert province["escalations"]["total"] is None
    assert set(province["escalations"]["by_reason"].values()) == {None}


def test_reports_survive_a_rebuild_of_their_read_model(system):
    wait_until(system.settled, what="settled")
    before = auditors_report(system, province="03")  # a province where nothing moves now
    indexes_before = system.indexes("reporting%")
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), "projections", "rebuild",
                           "reporting"], env=system.env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "events/s" in done.stdout and "swapped in" in done.stdout
    after = auditors_report(system, province="03")
    # The indexes, made after the bulk of the replay, came along with the tables.
    assert system.indexes("reporting%") == indexes_before
    assert any("reporting_cases_submitted" in index for index in indexes_before)
    assert {k: v for k, v in after.items() if k != "gender"} == \
        {k: v for k, v in before.items() if k != "gender"}


def scorecards(system, token=None, csv_too=False, **filters):
    path = "/v1/reports/offices.csv" if csv_too else "/v1/reports/offices"
    response = system.call("GET", "reporting", path, token, params=filters)
    assert response.status_code == 200, response.text
    return response.text if csv_too else response.json()


def test_each_offices_scorecard_shows_the_late_office_and_hides_small_counts(system):
    """Two offices of one district, five cases each: the one that let two deadlines pass
    shows a lower share on time; the public sees its two late cases hidden."""
    punctual, late_office = "commune-040101", "commune-040102"
    on_time = [submit(system, case_in("040101")) for _ in range(5)]  # an hour to acknowledge
    kept = [submit(system, case_in("040102")) for _ in range(3)]
    missed = [submit(system, case_in("040102", category="local-roads")) for _ in range(2)]
    for case in on_time:
        routed_to(system, case, punctual)
        act(system, case, "acknowledge", punctual)
    for case in kept:
        routed_to(system, case, late_office)
        act(system, case, "acknowledge", late_office)
    for case in missed:  # three seconds: breached, then escalated by itself
        wait_until(lambda case=case: system.scalar(
            "SELECT count(*) FROM routing_events WHERE originator_id = %s AND topic LIKE %s",
            (case["case_id"], "%SlaBreached")), what="the deadline breached")

    auditor = system.principal("auditor")

    def counted():
        wait_until(system.settled, what="settled")
        found = {row["office_id"]: row for row in
                 scorecards(system, auditor, province="04")["offices"]}
        return found.get(late_office, {}).get("acknowledged_late") == 2 and \
            found.get(punctual, {}).get("acknowledged_on_time") == 5 and found

    whole = wait_until(counted, timeout=60, what="every deadline reported")
    assert whole[punctual]["acknowledged_on_time_share"] == 1.0
    assert whole[late_office]["acknowledged_on_time_share"] == 0.6
    assert whole[late_office]["on_time_share"] < whole[punctual]["on_time_share"]
    assert whole[punctual]["cases"] == whole[late_office]["cases"] == 5
    assert whole[punctual]["name_en"] == "Anhchanh Rung Commune Office"
    assert whole[punctual]["name_km"].startswith("សាលាឃុំ/សង្កាត់")
    assert 0 < whole[punctual]["median_acknowledge_seconds"] < 600
    assert (whole[punctual]["province"], whole[punctual]["district"]) == ("04", "0401")

    public = scorecards(system, province="04", **MONTH)
    assert public["suppressed"] is True
    rows = {row["office_id"]: row for row in public["offices"]}
    # Two late cases are too few to show, and the share would give them away.
    assert rows[late_office]["acknowledged_late"] is None
    assert rows[late_office]["acknowledged_on_time_share"] is None
    assert rows[late_office]["on_time_share"] is None
    for row in public["offices"] + public["districts"]:
        for name in ("cases", "acknowledged_on_time", "acknowledged_late", "resolved_on_time",
                     "resolved_late", "responses"):
            assert row[name] is None or row[name] == 0 or row[name] >= 5, (row, name)
    # The scorecard is read from the same decision as the office's own summary.
    for office in (punctual, late_office):
        summary = report(system, office_id=office, **MONTH)
        assert rows[office]["cases"] == summary["total"]
        for name in ("acknowledged_on_time", "acknowledged_late",
                     "acknowledged_on_time_share"):
            assert rows[office][name] == summary["deadlines"][name]
    district = next(row for row in public["districts"] if row["district"] == "0401")
    assert district["name_en"] == "Baribour"
    assert scorecards(system, district="0402", **MONTH)["offices"] == []

    lines = list(csv.reader(io.StringIO(scorecards(system, csv_too=True, province="04",
                                                   **MONTH))))
    assert lines[0][:4] == ["scope", "id", "name_en", "name_km"]
    late_line = next(line for line in lines if line[1] == late_office)
    assert late_line[lines[0].index("acknowledged_late")] == "suppressed"
    # Public figures are for one ended month, as the summary's.
    refused = system.call("GET", "reporting", "/v1/reports/offices",
                          params={"from": MONTH["from"], "to": "2099-01-01"})
    assert refused.status_code == 400 and "to" in refused.json()["errors"]
    bad = system.call("GET", "reporting", "/v1/reports/offices",
                      params={"province": "04", "district": "1201"})
    assert bad.status_code == 400 and "district" in bad.json()["errors"]


def test_a_report_is_answered_after_the_database_ended_the_service_connections(system):
    """As after a database restart: every connection reporting keeps is ended by the
    server; the next report is answered, not a 503 from a connection found broken."""
    auditor = system.principal("auditor")
    assert "total" in report(system, auditor)
    ended = system.query(
        "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'ourvoice-reporting'")
    assert ended and all(row["ended"] for row in ended)
    for _ in range(3):  # each of the pool's connections in turn
        response = system.call("GET", "reporting", "/v1/reports/summary", auditor)
        assert response.status_code == 200, response.text
