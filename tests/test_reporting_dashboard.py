"""The dashboard in a real headless browser (Debian's chromium, driven over the DevTools
protocol): the page loads, its charts show the figures the public summary gives, a
filter changes them, and it speaks Khmer and English; each office's scorecard as a table
that sorts, whose names fit, photographed at a telephone's width and a desk's into
build/screenshots/ to look at."""

import base64
import json
import shutil
import time

import pytest

from tests.browser import Page, open_browser
from tests.system import ROOT, complaint, submit, wait_until

pytestmark = pytest.mark.e2e

# Reporting's calendar runs 40 days ahead, so this month is an ended one: public.
SYSTEM_ENV = {"OURVOICE_REPORTS_CLOCK_DAYS": "40"}
SCREENSHOTS = ROOT / "build" / "screenshots"


def drawings(page: Page) -> int:
    return int(page.evaluate("(document.body && document.body.dataset.ready) || 0"))


def charts(page: Page) -> dict:
    """What each chart shows: [key, value] per bar, value "hidden" for a hidden cell."""
    return json.loads(page.evaluate("""JSON.stringify(Object.fromEntries(
        [...document.querySelectorAll('[data-chart]')].map(chart => [chart.dataset.chart,
          [...chart.querySelectorAll('g[data-key]')].map(
            bar => [bar.dataset.key, bar.dataset.value])])))"""))


@pytest.fixture(scope="module")
def browser():
    with open_browser() as page:
        yield page


def public_report(system, **filters) -> dict:
    response = system.call("GET", "reporting", "/v1/reports/summary", params=filters)
    assert response.status_code == 200, response.text
    return response.json()


def as_bars(counts: dict) -> list[list[str]]:
    return [[key, "hidden" if value is None else str(value)] for key, value in counts.items()]


def expected_charts(report: dict) -> dict:
    return {
        "by_period": as_bars(report["by_period"]),
        "by_type": as_bars(report["by_type"]),
        "gender": as_bars(report["gender"]["totals"]),
        "by_channel": as_bars(report["by_channel"]),
        "by_area": as_bars(report["by_district"] if report["filters"].get("province")
                           else report["by_province"]),
        "by_category": as_bars(report["by_category"]),
        "escalations": as_bars(report["escalations"]["by_reason"]),
    }


def test_the_dashboard_draws_the_public_figures_and_a_filter_changes_them(system, browser,
                                                                          tmp_path):
    for _ in range(6):
        submit(system, complaint(location={"commune": "120101"}))
    submit(system, complaint(type="support", location={"commune": "120101"},
                             complainant={"anonymous": True, "gender": "male"}))
    for _ in range(3):
        submit(system, complaint(category="civil-registration", location={"commune": "170101"},
                                 complainant={"anonymous": True, "gender": "male"}))
    wait_until(system.settled, what="every event counted")
    auditor = system.principal("auditor")

    def counted():
        whole = system.call("GET", "reporting", "/v1/reports/summary", auditor).json()
        return whole["total"] == 10 and sum(whole["gender"]["totals"].values()) == 10

    wait_until(counted, what="every case counted, with its gender")

    browser.call("Page.navigate", url=system.url("reporting", "/dashboard?lang=en"))
    wait_until(lambda: drawings(browser) >= 1, what="the dashboard drawn")
    everywhere = public_report(system)
    assert charts(browser) == expected_charts(everywhere)
    # Four men: too few to show, and the women's count would give them away: both hidden.
    assert charts(browser)["gender"] == [["female", "hidden"], ["male", "hidden"],
                                          ["other", "0"], ["undisclosed", "0"]]
    headings = browser.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert "Cases by type" in headings and "Cases by gender" in headings
    total = browser.evaluate("document.querySelector('[data-figure=total] b').textContent")
    assert total == (str(everywhere["total"]) if everywhere["total"] is not None
                     else "held back")
    assert "fewer than five" in browser.evaluate("document.body.innerText")
    # The page asks for whole months only, and shows the month it was given.
    assert browser.evaluate("document.querySelector('[name=month]').type") == "month"
    assert browser.evaluate("document.querySelector('[name=month]').value") == \
        everywhere["filters"]["from"][:7]
    assert "held back" in browser.evaluate(
        "document.querySelector('[data-chart=gender]').textContent")

    shot = tmp_path / "dashboard-en.png"
    shot.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot")["data"]))
    shutil.copy(shot, system.logs / shot.name)  # kept beside the services' logs to look at

    drawn = drawings(browser)
    browser.evaluate("""(() => { const province = document.querySelector('[name=province]');
        province.value = '17'; province.dispatchEvent(new Event('change', {bubbles: true}));
        })()""")
    wait_until(lambda: drawings(browser) > drawn, what="drawn again for Siem Reap")
    siem_reap = public_report(system, province="17")
    assert siem_reap["total"] is None  # three cases
    assert charts(browser) == expected_charts(siem_reap)
    assert charts(browser)["by_area"] == [["1701", "hidden"]]
    assert browser.evaluate("location.search").startswith("?province=17")

    browser.evaluate("document.querySelector('[data-language=km]').click()")
    headings = browser.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert "ករណីតាមប្រភេទ" in headings and "ករណីតាមស្រុក/ខណ្ឌ" in headings
    assert browser.evaluate("document.documentElement.lang") == "km"
    time.sleep(0.2)  # let the new words be painted before the picture
    shot = tmp_path / "dashboard-km.png"
    shot.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot")["data"]))
    shutil.copy(shot, system.logs / shot.name)


# Every name on the page either fits its box or is cut at its end with the whole name on
# hover; none starts outside its chart (as a long name drawn leftwards from its bar did).
CLIPPED = """JSON.stringify([
  ...[...document.querySelectorAll('text[data-label]')].filter(label => {
    const box = label.getBBox(), room = label.closest('svg').viewBox.baseVal;
    const whole = label.querySelector('title').textContent;
    const shown = label.querySelector('tspan').textContent;
    return box.x < 0 || box.x + box.width > room.width
      || (shown !== whole && !(label.dataset.cut && shown.endsWith('…')
                               && whole.startsWith(shown.slice(0, -1))));
  }).map(label => label.textContent),
  ...[...document.querySelectorAll('.scorecards .name, .scorecards .other, h2, th button')]
    .filter(name => name.scrollWidth > name.clientWidth + 1
                    && name.title !== name.textContent).map(name => name.textContent)])"""


def photograph(page: Page, selector: str, path) -> None:
    """One part of the page at its own size, to look at closely."""
    box = json.loads(page.evaluate(f"""JSON.stringify((() => {{
        const r = document.querySelector('{selector}').getBoundingClientRect();
        return {{x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}};
        }})())"""))
    shot = page.call("Page.captureScreenshot", captureBeyondViewport=True,
                     clip={**box, "scale": 1})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def table(page: Page) -> list[dict]:
    return json.loads(page.evaluate("""JSON.stringify([...document.querySelectorAll(
        '.scorecards tbody tr')].map(row => ({key: row.dataset.key,
          name: row.querySelector('.name').textContent,
          other: row.querySelector('.other').textContent,
          ...Object.fromEntries([...row.querySelectorAll('td')].map(
            cell => [cell.dataset.column, cell.dataset.value]))})))"""))


def test_each_offices_scorecard_in_a_table_that_sorts_and_fits_a_telephone(system, browser):
    punctual, waiting = "commune-050101", "commune-050102"
    done = [submit(system, complaint(location={"commune": "050101"})) for _ in range(5)]
    for _ in range(5):
        submit(system, complaint(location={"commune": "050102"}))
    auditor = system.principal("auditor")
    for case in done:
        def routed(case=case):
            answer = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/acknowledge",
                                 system.principal("staff", punctual), json={})
            return answer.status_code in (200, 201)

        wait_until(routed, what="acknowledged at its office")

    def counted():
        wait_until(system.settled, what="settled")
        whole = system.call("GET", "reporting", "/v1/reports/offices", auditor,
                            params={"province": "05"}).json()
        rows = {row["office_id"]: row for row in whole["offices"]}
        return rows.get(punctual, {}).get("acknowledged_on_time") == 5 and \
            rows.get(waiting, {}).get("cases") == 5

    wait_until(counted, what="both offices counted")
    public = system.call("GET", "reporting", "/v1/reports/offices",
                         params={"province": "05"}).json()

    browser.viewport(1280, 900)
    browser.navigate(system.url("reporting", "/dashboard?lang=en&province=05"))
    browser.wait_for("document.querySelectorAll('.scorecards tbody tr').length >= 2",
                     what="the scorecards drawn")
    shown = table(browser)
    assert {row["key"] for row in shown} == {row["office_id"] for row in public["offices"]}
    for row in public["offices"]:
        drawn = next(r for r in shown if r["key"] == row["office_id"])
        assert drawn["name"] == row["name_en"] and drawn["other"] == row["name_km"]
        for column in ("cases", "on_time_share", "acknowledged_on_time_share",
                       "median_acknowledge_seconds", "satisfied_share"):
            expected = row[column]
            assert (drawn[column] == "hidden") if expected is None \
                else float(drawn[column]) == expected, (column, drawn, row)
    assert next(r for r in shown if r["key"] == punctual)["acknowledged_on_time_share"] == "1"
    # Worst first: the office with every deadline met sorts before the one with none decided.
    assert [r["key"] for r in shown].index(punctual) == 0

    browser.evaluate("document.querySelector('[data-sort=name]').click()")
    names = [r["name"] for r in table(browser)]
    assert names == sorted(names)
    browser.evaluate("document.querySelector('[data-sort=name]').click()")
    assert [r["name"] for r in table(browser)] == sorted(names, reverse=True)
    assert browser.evaluate(
        "document.querySelector('[data-sort=name]').parentElement.getAttribute('aria-sort')"
    ) == "descending"
    browser.evaluate("document.querySelector('[data-scope=districts]').click()")
    assert [r["key"] for r in table(browser)] == [d["district"] for d in public["districts"]]
    assert table(browser)[0]["name"] == "Basaed"
    browser.evaluate("document.querySelector('[data-scope=offices]').click()")

    # Long names (the sensitive category's, in English) are cut at their end, never before.
    browser.navigate(system.url("reporting", "/dashboard?lang=en"))
    browser.wait_for("document.querySelectorAll('.scorecards tbody tr').length >= 2",
                     what="the whole country drawn")
    for width in (1280, 360):
        browser.viewport(width, 900, mobile=width < 600)
        time.sleep(0.3)  # laid out again for the new width
        for language in ("en", "km"):
            browser.evaluate(f"document.querySelector('[data-language={language}]').click()")
            time.sleep(0.2)  # the new words painted before the picture
            assert json.loads(browser.evaluate(CLIPPED)) == [], (width, language)
            assert browser.evaluate(
                "document.documentElement.scrollWidth <= window.innerWidth"), (width, language)
            browser.screenshot(SCREENSHOTS / f"dashboard-offices-{width}-{language}.png")
            photograph(browser, "section.wide",
                       SCREENSHOTS / f"dashboard-offices-{width}-{language}-table.png")
    browser.viewport(1280, 1800)
