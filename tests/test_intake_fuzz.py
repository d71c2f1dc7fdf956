"""Fuzzing intake's HTTP API from its own OpenAPI document with schemathesis, against the
live service: no answer may be a 5xx, and every answer must be one the document declares,
with the declared content type, headers and body schema.

Each operation gets a bounded number of requests: the document's own examples, then valid
and invalid ones generated from it (hypothesis drives schemathesis' strategies directly;
at most some 800 requests, about 35 s on the test machine)."""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.system import submit

pytestmark = pytest.mark.e2e

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 20}


def fuzz(strategy, examples: int, session: requests.Session, headers: dict) -> list[int]:
    """Send up to `examples` requests drawn from `strategy`; returns the answers' statuses."""
    statuses: list[int] = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              phases=(Phase.generate,), suppress_health_check=list(HealthCheck))
    @given(strategy)
    def answered_as_declared(case):
        response = case.call_and_validate(session=session, checks=CHECKS, timeout=10,
                                          headers=headers)
        statuses.append(response.status_code)

    try:
        answered_as_declared()
    except Unsatisfiable:
        pass  # nothing in this operation can be made invalid (no parameters, no body)
    return statuses


def test_every_generated_request_is_answered_as_the_openapi_document_says(system):
    citizen = submit(system)  # a real case: calls that carry its token pass authentication
    headers = {"Authorization": f"Bearer {citizen['citizen_token']}"}
    schema = schemathesis.openapi.from_url(system.url("intake", "/openapi.json"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/cases", "/v1/cases/{tracking_code}", "/v1/cases/{tracking_code}/messages",
        "/v1/cases/{tracking_code}/feedback", "/v1/cases/{tracking_code}/withdraw",
        "/v1/categories", "/open311/v2/discovery.json", "/open311/v2/discovery.xml",
        *(f"/open311/v2/{path}.{fmt}" for fmt in ("json", "xml") for path in (
            "requests", "services", "services/{service_code}",
            "requests/{service_request_id}"))}
    session = requests.Session()
    answers: dict[str, list[int]] = {}
    failures: list[str] = []
    for operation in operations:
        name = f"{operation.method.upper()} {operation.path}"
        # The document's own examples first (the valid submission it shows), then data
        # generated to fit the document and data generated not to.
        runs = [(f"{name} (examples)", strategy, 3)
                for strategy in schema.get_strategies_from_examples(operation)]
        runs += [(f"{name} ({mode})", operation.as_strategy(generation_mode=mode), examples)
                 for mode, examples in EXAMPLES.items()]
        for label, strategy, examples in runs:
            try:
                answers[label] = answers.get(label, []) + fuzz(strategy, examples, session,
                                                               headers)
            except Exception as failure:  # every operation is tried; all failures are shown
                failures.append(f"{label}: {failure}")
    assert not failures, "\n\n".join(failures)
    assert sum(len(a) for a in answers.values()) >= 10 * len(operations), answers
    # The run got past validation to real work, not only to 400s.
    assert 201 in answers["POST /v1/cases (examples)"], answers["POST /v1/cases (examples)"]
    assert 200 in answers["GET /open311/v2/requests.json (positive)"]
    assert 200 in answers["GET /open311/v2/requests.xml (positive)"]
