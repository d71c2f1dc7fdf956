"""Fuzzing routing's, notifications' and reporting's HTTP APIs from their own OpenAPI
documents, against the live services, as tests/test_intake_fuzz.py does for intake: no
answer may be a 5xx, and every answer must be one the document declares."""

import pytest
import requests
import schemathesis

from tests.system import submit, wait_until
from tests.test_intake_fuzz import EXAMPLES, fuzz

pytestmark = pytest.mark.e2e

# Who calls: a caller who gets past authentication, so the fuzzing reaches real work.
CALLERS = {
    "routing": ("staff", "commune-120101"),
    "notifications": ("admin", None),
    "reporting": ("auditor", None),
}


@pytest.mark.parametrize("service", sorted(CALLERS))
def test_every_generated_request_is_answered_as_the_openapi_document_says(system, service):
    case = submit(system)
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s",
        (case["tracking_code"],)), what="a routed case to work on")
    role, office = CALLERS[service]
    headers = {"Authorization": f"Bearer {system.principal(role, office)}"}
    schema = schemathesis.openapi.from_url(system.url(service, "/openapi.json"))
    operations = [result.ok() for result in schema.get_all_operations()]
    session = requests.Session()
    answers: dict[str, list[int]] = {}
    failures: list[str] = []
    for operation in operations:
        name = f"{operation.method.upper()} {operation.path}"
        for mode, examples in EXAMPLES.items():
            label = f"{name} ({mode})"
            try:
                answers[label] = fuzz(operation.as_strategy(generation_mode=mode), examples,
                                      session, headers)
            except Exception as failure:  # every operation is tried; all failures are shown
                failures.append(f"{label}: {failure}")
    assert not failures, "\n\n".join(failures)
    assert sum(len(a) for a in answers.values()) >= 5 * len(operations), answers
