"""Every endpoint of every service against every kind of caller, from one table, and
the RPC that answers one service only against every service's broker user.

The table below is the whole access policy in one place. The test reads each service's
OpenAPI document, so an endpoint added without a row here fails it."""

import uuid

import pytest
import requests
from nameko.exceptions import RemoteError

from shared.config import SERVICES
from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.e2e

CALLERS = ("none", "bad token", "expired token", "citizen of this case",
           "citizen of another case", "staff of this office", "staff of another office",
           "ombudsman", "auditor", "admin")
OK = "ok"  # let in: any answer but 401, 403 and 5xx (a 409 for the case's state is fine)

PUBLIC = {caller: OK for caller in CALLERS}
# A webhook is opened by the gateway's signature or the bot's secret token, never by a
# bearer token: without the one, 401 whoever calls.
SIGNED = {caller: 401 for caller in CALLERS}
SYSTEM_ENV = {"OURVOICE_SMS_INBOUND_SECRET": "matrix gateway secret",
              "OURVOICE_TELEGRAM_SECRET_TOKEN": "matrix-telegram-secret",
              "OURVOICE_TELEGRAM_BOT_TOKEN": "123:matrix"}
# Public, but a token changes what is shown (reports unsuppressed for auditors), so a
# token that is sent must be valid.
PUBLIC_OR_SIGNED_IN = {**PUBLIC, "bad token": 401, "expired token": 401}


def only(*allowed: str, otherwise: int = 403) -> dict:
    return {caller: OK if caller in allowed
            else 401 if caller in ("none", "bad token", "expired token") else otherwise
            for caller in CALLERS}


CITIZEN = only("citizen of this case")
OFFICE_STAFF = only("staff of this office")
OMBUDSMAN = only()  # the ombudsman here serves another office than the case's
QUEUE = only("staff of this office", "auditor", "admin")
CASE_FILE = QUEUE
# A case's files: whoever reads the case file, but auditors (its facts only).
CASE_FILES = only("staff of this office", "admin")
STAFF_AND_OVERSIGHT = only("staff of this office", "staff of another office", "ombudsman",
                           "auditor", "admin")
AUDIT = only("auditor", "admin")
ADMIN = only("admin")

# A named account made by the `tokens` fixture, whose login anyone may try.
MATRIX_LOGIN = {"username": "matrix.staff", "password": "the matrix's own password"}

DESK_CASE = {**complaint(), "consent": {"given": True, "how": "spoken"}}

# (service, method, path) -> (expected answer by caller, request body)
MATRIX = {
    ("intake", "GET", "/health"): (PUBLIC, None),
    ("intake", "GET", "/health/live"): (PUBLIC, None),
    ("intake", "GET", "/health/ready"): (PUBLIC, None),
    ("intake", "GET", "/metrics"): (PUBLIC, None),
    ("intake", "GET", "/openapi.json"): (PUBLIC, None),
    # The page that shows the document (and its script and style) holds no data.
    ("intake", "GET", "/docs"): (PUBLIC, None),
    ("intake", "GET", "/docs/docs.js"): (PUBLIC, None),
    ("intake", "GET", "/docs/docs.css"): (PUBLIC, None),
    ("intake", "GET", "/v1/categories"): (PUBLIC, None),
    ("intake", "POST", "/v1/cases"): (PUBLIC, complaint()),
    ("intake", "GET", "/v1/cases/{tracking_code}"): (CITIZEN, None),
    ("intake", "POST", "/v1/cases/{tracking_code}/messages"): (CITIZEN, {"text": "ជំរាបសួរ"}),
    ("intake", "POST", "/v1/cases/{tracking_code}/feedback"): (CITIZEN,
                                                               {"satisfied": True, "rating": 4}),
    ("intake", "POST", "/v1/cases/{tracking_code}/withdraw"): (CITIZEN, None),
    ("intake", "POST", "/v1/cases/{tracking_code}/token"): (CITIZEN, None),
    # The office the case is with, and the ombudsman above it, add files too (an empty
    # body: a 415 for those let in).
    ("intake", "POST", "/v1/cases/{tracking_code}/attachments"): (
        only("citizen of this case", "staff of this office", "ombudsman"), None),
    ("intake", "GET", "/v1/cases/{tracking_code}/attachments/{attachment_id}"): (CITIZEN, None),
    # Staff record a case for a citizen at their own office's desk (intake, and routing
    # for the console); the ombudsman here is another office's.
    ("intake", "POST", "/v1/offices/{office_id}/desk/cases"): (OFFICE_STAFF, DESK_CASE),
    ("intake", "POST", "/v1/channels/sms"): (
        SIGNED, {"from": "+85512345678", "text": "HELP", "message_id": "matrix-1"}),
    ("intake", "POST", "/v1/channels/telegram"): (
        SIGNED, {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1},
                                             "text": "HELP"}}),
    # Open311: each endpoint in JSON and in XML, the same rules for both.
    **{("intake", method, f"/open311/v2/{path}.{suffix}"): (PUBLIC, None)
       for method, path in (("GET", "discovery"), ("GET", "services"),
                            ("GET", "services/{service_code}"), ("GET", "requests"),
                            ("POST", "requests"), ("GET", "requests/{service_request_id}"))
       for suffix in ("json", "xml")},
    ("routing", "GET", "/health"): (PUBLIC, None),
    ("routing", "GET", "/health/live"): (PUBLIC, None),
    ("routing", "GET", "/health/ready"): (PUBLIC, None),
    ("routing", "GET", "/metrics"): (PUBLIC, None),
    ("routing", "GET", "/openapi.json"): (PUBLIC, None),
    ("routing", "GET", "/docs"): (PUBLIC, None),
    ("routing", "GET", "/docs/docs.js"): (PUBLIC, None),
    ("routing", "GET", "/docs/docs.css"): (PUBLIC, None),
    ("routing", "GET", "/v1/offices"): (PUBLIC, None),
    ("routing", "GET", "/v1/offices/{office_id}/queue"): (QUEUE, None),
    ("routing", "GET", "/v1/cases/{case_id}"): (CASE_FILE, None),
    ("routing", "GET", "/v1/cases"): (CASE_FILE, None),
    ("routing", "GET", "/v1/cases/{tracking_code}/attachments/{attachment_id}"): (CASE_FILES,
                                                                                 None),
    ("routing", "POST", "/v1/cases/{case_id}/assign"): (OFFICE_STAFF, {"staff_id": "nobody"}),
    ("routing", "GET", "/v1/reply-templates"): (STAFF_AND_OVERSIGHT, None),
    ("routing", "POST", "/v1/cases/{case_id}/acknowledge"): (OFFICE_STAFF, None),
    ("routing", "POST", "/v1/cases/{case_id}/request-info"): (OFFICE_STAFF, {"question": "?"}),
    ("routing", "POST", "/v1/cases/{case_id}/resolve"): (OFFICE_STAFF, {"resolution": "done"}),
    ("routing", "POST", "/v1/cases/{case_id}/notes"): (OFFICE_STAFF, {"text": "a note"}),
    ("routing", "POST", "/v1/cases/{case_id}/transfer"): (
        OFFICE_STAFF, {"office_id": "commune-120109", "reason": "misrouted"}),
    ("routing", "POST", "/v1/cases/{case_id}/escalate"): (
        OFFICE_STAFF, {"reason": "the office cannot settle it"}),
    ("routing", "POST", "/v1/cases/{case_id}/findings"): (
        OMBUDSMAN, {"findings": "f", "recommendation": "r"}),
    ("routing", "POST", "/v1/cases/{case_id}/close"): (OMBUDSMAN, None),
    # The staff console's files hold no data: it reads everything through the API.
    ("routing", "GET", "/console/"): (PUBLIC, None),
    ("routing", "GET", "/console/words.json"): (PUBLIC, None),
    ("routing", "GET", "/console/{name}"): (PUBLIC, None),
    ("routing", "POST", "/v1/sessions"): (PUBLIC, MATRIX_LOGIN),
    # Only a staff session has one; an office system's token (all of these) has none.
    ("routing", "GET", "/v1/sessions/current"): (only(), None),
    ("routing", "DELETE", "/v1/sessions/current"): (only(), None),
    ("routing", "GET", "/v1/offices/{office_id}/staff"): (QUEUE, None),
    ("routing", "POST", "/v1/offices/{office_id}/desk/cases"): (OFFICE_STAFF, DESK_CASE),
    ("notifications", "GET", "/health"): (PUBLIC, None),
    ("notifications", "GET", "/health/live"): (PUBLIC, None),
    ("notifications", "GET", "/health/ready"): (PUBLIC, None),
    ("notifications", "GET", "/metrics"): (PUBLIC, None),
    ("notifications", "GET", "/openapi.json"): (PUBLIC, None),
    ("notifications", "GET", "/docs"): (PUBLIC, None),
    ("notifications", "GET", "/docs/docs.js"): (PUBLIC, None),
    ("notifications", "GET", "/docs/docs.css"): (PUBLIC, None),
    ("notifications", "GET", "/v1/notifications/dead-letters"): (ADMIN, None),
    ("notifications", "POST", "/v1/notifications/dead-letters/{delivery_id}/retry"): (ADMIN, None),
    ("reporting", "GET", "/health"): (PUBLIC, None),
    ("reporting", "GET", "/health/live"): (PUBLIC, None),
    ("reporting", "GET", "/health/ready"): (PUBLIC, None),
    ("reporting", "GET", "/metrics"): (PUBLIC, None),
    ("reporting", "GET", "/openapi.json"): (PUBLIC, None),
    ("reporting", "GET", "/docs"): (PUBLIC, None),
    ("reporting", "GET", "/docs/docs.js"): (PUBLIC, None),
    ("reporting", "GET", "/docs/docs.css"): (PUBLIC, None),
    ("reporting", "GET", "/dashboard"): (PUBLIC, None),
    ("reporting", "GET", "/dashboard/dashboard.js"): (PUBLIC, None),
    ("reporting", "GET", "/v1/reports/summary"): (PUBLIC_OR_SIGNED_IN, None),
    ("reporting", "GET", "/v1/reports/summary.csv"): (PUBLIC_OR_SIGNED_IN, None),
    ("reporting", "GET", "/v1/reports/labels"): (PUBLIC, None),
    ("reporting", "GET", "/v1/reports/offices"): (PUBLIC_OR_SIGNED_IN, None),
    ("reporting", "GET", "/v1/reports/offices.csv"): (PUBLIC_OR_SIGNED_IN, None),
    ("reporting", "GET", "/v1/audit/cases/{tracking_code}"): (AUDIT, None),
}


# The query string an endpoint is called with, beside its path.
QUERIES = {("routing", "GET", "/v1/cases"): "?tracking_code={tracking_code}"}


def endpoints_of(system) -> set:
    found = set()
    for service in SERVICES:
        spec = requests.get(system.url(service, "/openapi.json"), timeout=10).json()
        for path, operations in spec["paths"].items():
            found |= {(service, method.upper(), path) for method in operations}
    return found


def test_every_endpoint_has_a_row_in_the_table(system):
    assert endpoints_of(system) == set(MATRIX), "add the new endpoint's row to MATRIX"


def fresh_case(system) -> dict:
    case = submit(system)
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s",
        (case["tracking_code"],)), what="case routed")
    # Intake lets the office add files once its own view knows where the case went.
    wait_until(lambda: system.scalar(
        "SELECT office_id FROM intake_case_view WHERE case_id = %s", (case["case_id"],)),
        what="intake's view of the case routed")
    return case


@pytest.fixture(scope="module")
def tokens(system):
    other = submit(system)
    one_time = system.ourvoice("staff", "add", "--name", "Matrix Staff", "--username",
                               MATRIX_LOGIN["username"], "--role", "staff", "--office",
                               "commune-120101").stdout.strip().splitlines()[-1]
    changed = system.call("POST", "routing", "/v1/sessions", json={
        **MATRIX_LOGIN, "password": one_time, "new_password": MATRIX_LOGIN["password"]})
    assert changed.status_code == 201, changed.text
    expired = system.principal("staff", "commune-120101", fresh=True)
    system.query("UPDATE ourvoice_principals SET expires_at = now() - interval '1 second' "
                 "WHERE created_at = (SELECT max(created_at) FROM ourvoice_principals) "
                 "RETURNING id")
    return {
        "none": None, "bad token": "p1.not-a-real-token", "expired token": expired,
        "citizen of another case": other["citizen_token"],
        "staff of this office": system.principal("staff", "commune-120101"),
        "staff of another office": system.principal("staff", "commune-120109"),
        "ombudsman": system.principal("ombudsman", "district-ombudsman-1201"),
        "auditor": system.principal("auditor"), "admin": system.principal("admin"),
    }


@pytest.mark.parametrize("endpoint", sorted(MATRIX), ids=" ".join)
def test_each_caller_gets_what_the_table_says(system, tokens, endpoint):
    service, method, path = endpoint
    expected, body = MATRIX[endpoint]
    case = fresh_case(system)  # a case of its own: allowed calls may change its state
    values = {"tracking_code": case["tracking_code"], "case_id": case["case_id"],
              "office_id": "commune-120101", "service_code": "water-supply",
              "service_request_id": case["tracking_code"], "delivery_id": str(uuid.uuid4()),
              "attachment_id": str(uuid.uuid4()),
              "name": "console.js"}
    url = (path + QUERIES.get(endpoint, "")).format(**values)
    callers = {**tokens, "citizen of this case": case["citizen_token"]}
    # Refusals first, so that an allowed call (a transfer, say) cannot change who is refused.
    order = sorted(CALLERS, key=lambda caller: expected[caller] == OK)
    wrong = {}
    for caller in order:
        response = system.call(method, service, url, callers[caller],
                               **({"json": body} if body is not None else {}))
        status = response.status_code
        if expected[caller] == OK:
            passed = status not in (401, 403) and status < 500
        else:
            passed = status == expected[caller]
        if not passed:
            wrong[caller] = f"{status} (expected {expected[caller]})"
    assert not wrong, wrong


# (service, method) -> the one service whose broker user it answers; called with a case id.
RPC = {
    ("intake", "case_history"): "reporting",
    ("routing", "case_history"): "reporting",
    ("notifications", "case_history"): "reporting",
}


@pytest.mark.parametrize("method", sorted(RPC), ids=".".join)
def test_each_rpc_answers_only_the_service_the_table_says(system, method):
    service, name = method
    case = fresh_case(system)
    for caller in SERVICES:
        if caller == RPC[method]:
            answer = system.rpc(caller, service, name, case["case_id"])
            assert isinstance(answer, list), answer
        else:
            with pytest.raises(RemoteError, match="CallerRefused"):
                system.rpc(caller, service, name, case["case_id"])
