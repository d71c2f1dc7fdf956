"""What a log line says, and what it never says: the ids of the work in hand, in plain
text or JSON lines; never a token, nor the values of a query string."""

import json
import logging
import sys
from types import SimpleNamespace

import pytest

from shared import logcontext
from shared.logcontext import JsonLines, PlainText, redact, request_id_from


@pytest.fixture(autouse=True)
def no_ids_left_over():
    logcontext.clear()
    yield
    logcontext.clear()


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    line = logging.LogRecord("services.intake", logging.WARNING, __file__, 1, message, args,
                             exc_info)
    for name, value in extra.items():
        setattr(line, name, value)
    return line


def filtered(line: logging.LogRecord) -> logging.LogRecord:
    for step in (logcontext.Redact(), logcontext.IdsFilter()):
        assert step.filter(line)
    return line


@pytest.mark.parametrize("said, written", [
    ("Authorization: Bearer eyJhbGciOi.abc-def_1", "Authorization: Bearer …"),
    ("authorization: bearer abc123, then more", "authorization: bearer …, then more"),
    ("Basic dXNlcjpwYXNz refused", "Basic … refused"),
    ("GET /v1/cases/KH-1?token=abc&lang=km HTTP/1.1", "GET /v1/cases/KH-1?token=…&lang=… HTTP/1.1"),
    ("POST /open311/v2/requests.json?api_key=secret", "POST /open311/v2/requests.json?api_key=…"),
    ('"GET /metrics?a=1&b= HTTP/1.1" 200', '"GET /metrics?a=…&b=… HTTP/1.1" 200'),
    ("nothing secret here", "nothing secret here"),
])
def test_tokens_and_query_string_values_are_redacted(said, written):
    assert redact(said) == written


def test_a_message_is_redacted_after_its_arguments_are_put_in():
    line = filtered(record("calling %s with %s", "/v1/x?token=abc", "Bearer s3cret"))
    assert line.getMessage() == "calling /v1/x?token=… with Bearer …"
    assert "abc" not in PlainText("intake").format(line)
    assert "s3cret" not in JsonLines("intake").format(line)


@pytest.mark.parametrize("given", ["abc-123", "0f8e:9a.b_c", "A" * 64])
def test_a_sane_request_id_from_the_caller_is_kept(given):
    assert request_id_from(given) == given


@pytest.mark.parametrize("given", [None, "", "-starts-with-a-dash", "A" * 65, "two words",
                                   "line\nbreak", "quote\"d", "ü-not-ascii", "a/b"])
def test_any_other_request_id_is_replaced_by_a_new_one(given):
    made = request_id_from(given)
    assert made != given and len(made) == 32 and int(made, 16) >= 0
    assert request_id_from(given) != made  # each one new


def test_a_json_line_has_the_time_level_service_logger_message_and_the_ids_there_are():
    logcontext.bind(request_id="req-1", case_id="c0ffee")
    line = json.loads(JsonLines("routing").format(filtered(record("routed to %s", "owso-0102"))))
    assert set(line) == {"time", "level", "service", "logger", "message", "request_id",
                         "case_id"}
    assert (line["level"], line["service"], line["logger"], line["message"]) == (
        "WARNING", "routing", "services.intake", "routed to owso-0102")
    assert line["time"].endswith("+00:00") and "T" in line["time"]
    assert (line["request_id"], line["case_id"]) == ("req-1", "c0ffee")


def test_ids_given_with_the_line_win_over_the_threads():
    logcontext.bind(request_id="req-1", event_id="e-thread")
    line = json.loads(JsonLines("reporting").format(filtered(record("x", event_id="e-given"))))
    assert (line["request_id"], line["event_id"]) == ("req-1", "e-given")


def test_a_json_line_writes_a_traceback_redacted_and_khmer_as_it_is():
    try:
        raise ValueError("refused Bearer s3cret")
    except ValueError:
        line = filtered(record("ករណី %s", "failed", exc_info=sys.exc_info()))
    written = JsonLines("intake").format(line)
    found = json.loads(written)
    assert found["message"] == "ករណី failed" and "ករណី" in written
    assert "ValueError" in found["error"] and "s3cret" not in found["error"]


def test_plain_text_ends_the_message_with_the_ids_before_a_traceback():
    logcontext.bind(request_id="req-9", event_id="e-1", case_id="c-2")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        line = filtered(record("handled", exc_info=sys.exc_info()))
    head, _, rest = PlainText("notifications").format(line).partition("\n")
    assert head.endswith(" notifications WARNING services.intake: handled "
                         "[request=req-9 event=e-1 case=c-2]")
    assert "RuntimeError: boom" in rest


def test_a_worker_carries_the_request_id_and_an_events_ids_while_it_works():
    provider = logcontext.LogContext()
    worker = SimpleNamespace(data={"request_id": "req-7"},
                             args=({"event_id": "e-3", "case_id": "c-4", "type": "x"},))
    provider.worker_setup(worker)
    assert logcontext.current() == {"request_id": "req-7", "event_id": "e-3", "case_id": "c-4"}
    provider.worker_teardown(worker)
    assert logcontext.current() == {}
    provider.worker_setup(SimpleNamespace(data={}, args=("KH-1",)))  # an RPC call, no event
    assert logcontext.current() == {}


def test_a_line_without_ids_is_as_it_was():
    text = PlainText("intake").format(filtered(record("started")))
    assert text.endswith(" intake WARNING services.intake: started")


def test_an_unknown_log_format_stops_the_program_naming_the_variable():
    with pytest.raises(SystemExit, match="OURVOICE_LOG_FORMAT='xml' is not a log format"):
        logcontext.configure("intake", "xml")
