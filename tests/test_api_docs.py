"""Each service's OpenAPI document as the running service serves it: valid OpenAPI 3 by
openapi-spec-validator (every $ref resolving), an operation for every HTTP route the
service has and a route for every operation; and its page, GET /docs, in a real headless
browser: every operation of the document shown with its summary, parameters, request
fields and answers, nothing fetched from elsewhere, no error on the console and nothing
the content security policy refused."""

from __future__ import annotations

import pytest
import requests
from openapi_spec_validator import OpenAPIV30SpecValidator

from ourvoice.registry import SERVICES as CLASSES
from shared.config import SERVICES
from shared.web import HttpEntrypoint, route_template
from tests.browser import Page, open_browser
from tests.system import ROOT

pytestmark = pytest.mark.e2e

SCREENSHOTS = ROOT / "build" / "screenshots"
METHODS = ("get", "put", "post", "patch", "delete")
# The route that answers every path no other route matches, with the JSON 404; and
# intake's under /open311/, with Open311's list of errors (in XML for a path in .xml).
CATCH_ALL = "/{unknown}"
CATCH_ALLS = {service: {CATCH_ALL} for service in SERVICES} | {
    "intake": {CATCH_ALL, "/open311/{unknown}", "/open311/{unknown}.xml"}}


def document(system, service: str) -> dict:
    response = requests.get(system.url(service, "/openapi.json"), timeout=10)
    assert response.status_code == 200
    return response.json()


def operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {(method, path): item[method] for path, item in spec["paths"].items()
            for method in METHODS if method in item}


def refs(value) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return own + [r for v in value.values() for r in refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs(v)]
    return []


def resolve(spec: dict, ref: str):
    assert ref.startswith("#/"), ref
    found = spec
    for part in ref[2:].split("/"):
        found = found[part.replace("~1", "/").replace("~0", "~")]
    return found


def routes_of(service: str) -> set[tuple[str, str]]:
    """Every (method, path template) the service's class gives nameko's web server."""
    found = set()
    for name in dir(CLASSES[service]):
        for entrypoint in getattr(getattr(CLASSES[service], name), "nameko_entrypoints", ()):
            if isinstance(entrypoint, HttpEntrypoint):
                template = route_template(entrypoint.url)
                found |= {(method.lower(), template) for method in entrypoint.method.split(",")}
    return found


# -- the documents ---------------------------------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_the_document_is_valid_openapi(system, service):
    spec = document(system, service)
    assert spec["openapi"] == "3.0.3"
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
              for error in OpenAPIV30SpecValidator(spec).iter_errors()]
    assert errors == []
    # The validator follows each $ref; this says so in as many words.
    assert refs(spec) and all(isinstance(resolve(spec, ref), dict) for ref in refs(spec))
    for (method, path), operation in operations(spec).items():
        assert operation["summary"], (method, path)
        successes = [code for code in operation["responses"] if code.startswith("2")]
        assert len(successes) == 1, (method, path, successes)
        assert {"404"} <= operation["responses"].keys(), (method, path)


@pytest.mark.parametrize("service", SERVICES)
def test_the_document_names_every_route_and_only_those(system, service):
    documented = set(operations(document(system, service)))
    routes = routes_of(service)
    catch_alls = {route for route in routes if "{unknown}" in route[1]}
    assert catch_alls == {(method, path) for method in METHODS for path in CATCH_ALLS[service]}
    assert documented == routes - catch_alls
    # And the running service answers each operation from its own route, not the one
    # for paths it does not have (called without a token or body: refused or invalid).
    caught = {}
    for method, path in sorted(documented):
        url = system.url(service, path.replace("{", "").replace("}", ""))
        answer = requests.request(method, url, timeout=10)
        if answer.status_code == 404 and "no such resource" in answer.text:
            caught[(method, path)] = answer.text
    assert caught == {}


def test_a_path_the_document_lacks_is_the_json_404(system):
    answer = requests.get(system.url("intake", "/v1/no-such-thing"), timeout=10)
    assert answer.status_code == 404
    assert answer.json() == {"errors": {"_": ["no such resource: /v1/no-such-thing"]}}


# -- the page ------------------------------------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_the_page_files_have_their_type_and_a_strict_policy(system, service):
    for path, mimetype in (("/docs", "text/html; charset=utf-8"),
                           ("/docs/docs.js", "text/javascript; charset=utf-8"),
                           ("/docs/docs.css", "text/css; charset=utf-8")):
        response = requests.get(system.url(service, path), timeout=10)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"] == mimetype
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "http" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["Content-Encoding"] == "gzip"  # requests asks for it
        again = requests.get(system.url(service, path), timeout=10,
                             headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304


# What the page's policy refuses, kept where the test can read it: added before any of
# the page's own script runs (DevTools' scripts are not the page's, and not refused).
RECORD_VIOLATIONS = """
window.violations = [];
document.addEventListener('securitypolicyviolation', (event) => window.violations.push(
  {directive: event.violatedDirective, blocked: event.blockedURI}));
"""

# The page as drawn: each operation with its summary line, and, opened, its parameters,
# the JSON request body's fields and its answers.
SHOWN = """(() => Array.from(document.querySelectorAll('details.operation')).map((op) => {
  const json = op.querySelector('.request [data-media-type="application/json"] ul.fields');
  return {
    method: op.dataset.method, path: op.dataset.path,
    line: op.querySelector('summary').innerText,
    summary: op.querySelector('summary .summary').textContent,
    parameters: Array.from(op.querySelectorAll('.parameters tr[data-parameter]'),
                           (row) => row.dataset.parameter),
    fields: json ? Array.from(json.children, (li) => li.dataset.field) : null,
    statuses: Array.from(op.querySelectorAll('.responses > ul > li'), (li) => li.dataset.status),
    visible: op.querySelector('.responses').checkVisibility(),
  };
}))()"""


@pytest.fixture(scope="module")
def browser():
    with open_browser() as page:
        for domain in ("Network", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Page.addScriptToEvaluateOnNewDocument", source=RECORD_VIOLATIONS)
        yield page


def shown_problems(page: Page, since: int) -> list:
    """What the console said as an error or warning, and uncaught exceptions, since then."""
    problems = []
    for event in page.events[since:]:
        method, params = event["method"], event["params"]
        if method == "Runtime.exceptionThrown":
            problems.append(params["exceptionDetails"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning",
                                                                         "assert"):
            problems.append(params["args"])
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            problems.append(params["entry"])
    return problems


def expected_fields(spec: dict, operation: dict) -> list[str] | None:
    schema = operation.get("requestBody", {}).get("content", {}).get(
        "application/json", {}).get("schema")
    if schema is None:
        return None
    while "$ref" in schema:
        schema = resolve(spec, schema["$ref"])
    return list(schema.get("properties", {}))


def expected_parameters(spec: dict, operation: dict, item: dict) -> list[str]:
    return [p["name"] for p in item.get("parameters", []) + operation.get("parameters", [])]


@pytest.mark.parametrize("service", SERVICES)
def test_the_page_shows_every_operation_of_the_document(system, browser, service):
    spec = document(system, service)
    since = len(browser.events)
    browser.navigate("about:blank")
    browser.navigate(system.url(service, "/docs"))
    count = browser.wait_for("document.body?.dataset.operations", what="the operations drawn")
    assert int(count) == len(operations(spec)) > 5
    assert browser.evaluate("document.title") == f"{spec['info']['title']} API"

    # Closed, each shows its method, path and summary, in the document's order.
    shown = browser.evaluate(SHOWN)
    assert [(op["method"], op["path"], op["summary"]) for op in shown] == [
        (method, path, operation["summary"])
        for (method, path), operation in operations(spec).items()]
    assert all(op["line"].startswith(f"{op['method'].upper()}\n") or
               op["line"].startswith(f"{op['method'].upper()} ") for op in shown)
    assert not any(op["visible"] for op in shown)
    if service == "routing":
        browser.viewport(1280, 900)
        shot = browser.screenshot(SCREENSHOTS / "api-docs-routing.png")
        print(f"\nscreenshot: {shot}")

    # Opened, each shows what the document says it takes and answers.
    browser.evaluate("document.getElementById('open-all').click()")
    shown = {(op["method"], op["path"]): op for op in browser.evaluate(SHOWN)}
    for (method, path), operation in operations(spec).items():
        drawn = shown[(method, path)]
        assert drawn["visible"], (method, path)
        assert drawn["parameters"] == expected_parameters(spec, operation, spec["paths"][path])
        assert drawn["fields"] == expected_fields(spec, operation), (method, path)
        assert drawn["statuses"] == sorted(operation["responses"]), (method, path)

    # Finding by a word leaves the operations whose line has it.
    browser.evaluate("""(() => { const find = document.querySelector('[name=find]');
        find.value = 'health'; find.dispatchEvent(new Event('input')); })()""")
    left = browser.evaluate("Array.from(document.querySelectorAll('details.operation'))"
                            ".filter((op) => !op.hidden).map((op) => op.dataset.path)")
    assert left == [path for (_, path) in operations(spec) if path.startswith("/health")]

    # Nothing from anywhere but the service itself; no error, nothing refused.
    origin = system.url(service, "")
    fetched = [e["params"]["request"]["url"] for e in browser.events[since:]
               if e["method"] == "Network.requestWillBeSent"]
    assert sorted(fetched) == sorted(origin + path for path in (
        "/docs", "/docs/docs.css", "/docs/docs.js", "/openapi.json"))
    assert shown_problems(browser, since) == []
    assert browser.evaluate("window.violations") == []


def test_the_pages_policy_refuses_an_inline_script_put_in_it(system, browser):
    """The page's policy holds, and the test above would see it refuse something."""
    browser.navigate("about:blank")
    browser.navigate(system.url("intake", "/docs"))
    browser.wait_for("document.body?.dataset.operations", what="the operations drawn")
    browser.evaluate("""(() => { const script = document.createElement('script');
        script.textContent = 'window.ran = true'; document.body.append(script); })()""")
    violations = browser.wait_for("window.violations.length && window.violations",
                                  what="the inline script refused")
    assert [v["directive"] for v in violations] == ["script-src-elem"]
    assert browser.evaluate("window.ran === undefined")


def test_the_known_operations_are_there_in_words(system, browser):
    browser.navigate("about:blank")
    browser.navigate(system.url("intake", "/docs#submit"))
    browser.wait_for("document.body?.dataset.operations", what="the operations drawn")
    text = browser.evaluate("document.body.innerText")
    spec = document(system, "intake")
    assert "/v1/cases" in text and spec["paths"]["/v1/cases"]["post"]["summary"] in text
    # The link opened the operation it names: its body's fields are on the page.
    assert browser.evaluate("document.getElementById('submit').open")
    assert "Idempotency-Key" in text and "description" in text
