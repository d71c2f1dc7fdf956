"""The differencing attack on public reports, through the real services: a few cases in
two districts (one of them a single gender-based-violence case), then an attacker asks
every query the public may ask of that month, writes down every figure and every sum
that ties them (a total and its parts, a province and its districts, a place and its
offices, the whole country and every office), and solves: no count of 1 to 4 is shown,
and none follows from the rest. Windows that overlap or nest are refused.

Reporting's calendar is moved on 40 days here (OURVOICE_REPORTS_CLOCK_DAYS), so the
month these cases are submitted in reads as one that has ended."""

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.e2e

SYSTEM_ENV = {"OURVOICE_REPORTS_CLOCK_DAYS": "40"}
NOW = datetime.now(UTC).astimezone(ZoneInfo("Asia/Phnom_Penh"))
MONTH = NOW.date().replace(day=1)
NEXT = (MONTH + timedelta(days=32)).replace(day=1)
PROVINCES = [f"{n:02d}" for n in range(1, 26)]


def case_in(commune, gender="female", **overrides):
    return complaint(location={"commune": commune},
                     complainant={"anonymous": True, "gender": gender}, **overrides)


def public(system, path="/v1/reports/summary", token=None, **params):
    return system.call("GET", "reporting", path, token, params=params)


def month_report(system, **scope) -> dict:
    response = public(system, **{"from": MONTH.isoformat(), "to": NEXT.isoformat()}, **scope)
    assert response.status_code == 200, response.text
    return response.json()


def solve(hidden: set, equations: list[dict]) -> set:
    """The hidden figures an attacker can compute: Gauss-Jordan over the hidden ones
    (shown figures are constants), a pivot alone on its row is determined."""
    rows: dict = {}
    for equation in equations:
        row = {k: Fraction(v) for k, v in equation.items() if k in hidden and v}
        for pivot in [k for k in row if k in rows]:
            factor = row.get(pivot, 0)
            for k, v in rows[pivot].items():
                row[k] = row.get(k, 0) - factor * v
            row = {k: v for k, v in row.items() if v}
        if not row:
            continue
        pivot = sorted(row, key=repr)[0]
        row = {k: v / row[pivot] for k, v in row.items()}
        for other, other_row in rows.items():
            factor = other_row.get(pivot, 0)
            if factor:
                merged = {k: other_row.get(k, 0) - factor * row.get(k, 0)
                          for k in {*other_row, *row}}
                rows[other] = {k: v for k, v in merged.items() if v}
        rows[pivot] = row
    return {k for k, row in rows.items() if len(row) == 1}


class Attacker:
    """Every public figure of the month as a variable named by what it counts, and
    every sum a reader knows ties them."""

    def __init__(self):
        self.value: dict = {}      # variable -> shown count, or None when hidden
        self.sums: list = []       # (total, [parts])

    def see(self, key, value):
        assert value is None or isinstance(value, int), (key, value)
        assert value is None or not 0 < value < 5, f"a count of {value} shown: {key}"
        assert self.value.get(key, value) == value, f"{key} read two ways"
        self.value[key] = value

    def read(self, report: dict, area: str, office: str):
        total = (area, office, "cases", "")
        self.see(total, report["total"])
        for section in ("type", "category", "channel", "status"):
            parts = [(area, office, section, v) for v in report[f"by_{section}"]]
            for key in parts:
                self.see(key, report[f"by_{section}"][key[3]])
            self.sums.append((total, parts))
        genders = report["gender"]["totals"]
        parts = [(area, office, "gender", g) for g in genders]
        for key in parts:
            self.see(key, genders[key[3]])
        self.sums.append((total, parts))
        for name, level in (("by_province", 2), ("by_district", 4)):
            parts = [(place, office, "cases", "") for place in report[name]]
            for key in parts:
                self.see(key, report[name][key[0]])
            if len(area) < level:
                self.sums.append((total, parts))
        if not office:
            parts = [(area, o, "cases", "") for o in report["by_office"]]
            for key in parts:
                self.see(key, report["by_office"][key[1]])
            self.sums.append((total, parts))
        reasons = report["escalations"]["by_reason"]
        escalated = (area, office, "escalations", "")
        self.see(escalated, report["escalations"]["total"])
        parts = [(area, office, "escalations", r) for r in reasons]
        for key in parts:
            self.see(key, reasons[key[3]])
        self.sums.append((escalated, parts))
        for name, value in report["deadlines"].items():
            if name.endswith("_share"):
                done = name.removesuffix("_on_time_share")
                if value is not None:  # a share beside one hidden part would give it away
                    assert None not in (report["deadlines"][f"{done}_on_time"],
                                        report["deadlines"][f"{done}_late"]), name
            else:
                self.see((area, office, name, ""), value)
        responses = report["satisfaction"]["responses"]
        self.see((area, office, "feedback", ""), responses)
        self.see((area, office, "feedback", "satisfied"), report["satisfaction"]["satisfied"])
        if report["satisfaction"]["satisfied_share"] is not None:
            assert responses is not None and responses >= 5
        self.see((area, office, "evaluations", ""), report["evaluations"]["evaluations"])
        for name in ("acknowledge", "resolve"):
            times = report[f"time_to_{name}"]
            self.see((area, office, f"{name}d", ""), times["cases"])
            if times["median_seconds"] is not None:
                assert times["cases"] is not None and times["cases"] >= 5


def nested_sums(attacker: Attacker) -> list:
    """Sums across scopes, over every part the attacker saw (parts not seen are zero):
    a province is its districts, the country its provinces, a place's cases are its
    offices', and each of the country's figures is its offices'."""
    parts: dict = {}
    for area, office, section, value in attacker.value:
        key = (area, office, section, value)
        ups = []
        if len(area) in (2, 4) and (office == "" or section == "cases"):
            ups.append(((area[:2] if len(area) == 4 else "", office, section, value), "area"))
        if office and (area == "" or section == "cases"):
            ups.append(((area, "", section, value), "office"))
        for up in ups:
            if up[0] in attacker.value:
                parts.setdefault(up, set()).add(key)
    return [(total, sorted(p)) for (total, _), p in parts.items()]


def test_no_public_figure_of_a_month_reveals_a_count_of_one_to_four(system):
    for _ in range(6):
        submit(system, case_in("120101"))
    submit(system, case_in("120109", category="gender-based-violence"))  # the target
    for gender in ("female", "female", "female", "male"):
        submit(system, case_in("120201", gender=gender))
    for gender in ("female",) * 5 + ("male", "male"):
        submit(system, case_in("170101", gender=gender, category="civil-registration"))
    for gender in ("female",) * 12 + ("male",) * 8:  # a busier place, whose figures show
        submit(system, case_in("030101", gender=gender))
    auditor = system.principal("auditor")

    def counted():
        whole = public(system, token=auditor, province="12").json()
        return whole["total"] == 11 and whole["gender"] and \
            sum(whole["gender"]["totals"].values()) == 11 and \
            "unrouted" not in whole["by_office"]

    wait_until(system.settled, what="every event counted")
    wait_until(counted, what="every case counted, with its gender, at its office")

    # The finding: the one-case window of the district. Public windows are whole months.
    target = public(system, district="1201", **{"from": NOW.date().isoformat(),
                                                "to": (NOW.date() + timedelta(days=1)).isoformat()})
    assert target.status_code == 400 and "from" in target.json()["errors"], target.text

    attacker = Attacker()
    country = month_report(system)
    seen = {"": country}
    attacker.read(country, "", "")
    scopes = [("province", p) for p in country["by_province"]]
    scopes += [("district", d) for d in country["by_district"]]
    scopes += [("office_id", o) for o in country["by_office"] if o != "unrouted"]
    for name, code in scopes:
        found = month_report(system, **{name: code})
        seen[f"{name}={code}"] = found
        attacker.read(found, code if name != "office_id" else "",
                      code if name == "office_id" else "")
        assert "gender-based-violence" not in found["by_category"]
    district = month_report(system, district="1201")
    # The one sensitive case is in a bucket of its own, hidden: never under its category.
    assert district["by_category"]["sensitive"] is None
    assert "gender-based-violence" not in country["by_category"]

    (system.logs / "public-reports.json").write_text(json.dumps(seen, indent=1))
    attacker.sums.extend(nested_sums(attacker))
    hidden = {k for k, v in attacker.value.items() if v is None}
    assert hidden, "the month has small cells: some must be hidden"
    assert country["total"] in (None, 38)
    equations = []
    for total, parts in attacker.sums:
        equation = {total: 1}
        for part in parts:
            equation[part] = equation.get(part, 0) - 1
        equations.append(equation)
    assert solve(hidden, equations) == set()
    # Hidden cells are never zero, so two hidden parts of a sum beside a shown total
    # must hold five cases at least, else their sum is itself a small count.
    for total, parts in attacker.sums:
        held = [p for p in parts if attacker.value.get(p, 0) is None]
        if held and attacker.value.get(total) is not None:
            rest = attacker.value[total] - sum(attacker.value.get(p) or 0 for p in parts)
            assert len(held) >= 2 and rest >= 5, (total, held, rest)

    # The CSV says the same, and never a small count.
    table = public(system, "/v1/reports/summary.csv", district="1201",
                   **{"from": MONTH.isoformat(), "to": NEXT.isoformat()})
    assert table.status_code == 200 and "suppressed" in table.text
    assert "gender-based-violence" not in table.text


def test_windows_that_overlap_or_nest_are_refused_to_the_public(system):
    month = {"from": MONTH.isoformat(), "to": NEXT.isoformat()}
    quarter_end = (NEXT + timedelta(days=62)).replace(day=1)
    for bad, field in (({"from": MONTH.isoformat(), "to": (MONTH + timedelta(days=10)).isoformat()},
                        "to"),
                       ({"from": (MONTH + timedelta(days=1)).isoformat(), "to": NEXT.isoformat()},
                        "from"),
                       ({"from": MONTH.isoformat(), "to": quarter_end.isoformat()}, "to"),
                       ({"from": NEXT.isoformat()}, "to"),  # not over yet, even moved on
                       ({**month, "from": f"{MONTH.isoformat()}T06:00:00+07:00"}, "from"),
                       ({**month, "province": "12", "district": "1201"}, "office_id"),
                       ({**month, "district": "1201", "office_id": "commune-120101"},
                        "office_id"),
                       ({**month, "period": "day"}, "period")):
        response = public(system, **bad)
        assert response.status_code == 400, (bad, response.text)
        assert field in response.json()["errors"], (bad, response.text)
    assert public(system, **month).status_code == 200
    # An office's own staff may ask for whole days of their office; not of another's.
    staff = system.principal("staff", "commune-120101")
    day = {"from": NOW.date().isoformat(), "to": (NOW.date() + timedelta(days=1)).isoformat()}
    own = public(system, token=staff, office_id="commune-120101", **day)
    assert own.status_code == 200, own.text
    assert own.json()["total"] in (None, 0) or own.json()["total"] >= 5
    other = public(system, token=staff, office_id="commune-120201", **day)
    assert other.status_code == 400 and "from" in other.json()["errors"]
    by_hour = public(system, token=system.principal("auditor"),
                     **{"from": f"{NOW.date().isoformat()}T06:00:00"})
    assert by_hour.status_code == 400 and "from" in by_hour.json()["errors"]
