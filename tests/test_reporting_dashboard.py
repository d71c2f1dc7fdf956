"""The dashboard in a real headless browser (Debian's chromium, driven over the DevTools
protocol): the page loads, its charts show the figures the public summary gives, a
filter changes them, and it speaks Khmer and English."""

import base64
import json
import shutil
import time

import pytest

from tests.browser import Page, open_browser
from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.e2e

# Reporting's calendar runs 40 days ahead, so this month is an ended one: public.
SYSTEM_ENV = {"OURVOICE_REPORTS_CLOCK_DAYS": "40"}


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
