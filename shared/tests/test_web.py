"""The shared HTTP edge, against the real database and broker."""

import json

import pytest
from marshmallow import Schema, fields
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from shared.access import PUBLIC
from shared.config import env
from shared.db import Database
from shared.settings import reload, settings
from shared.web import (
    FORMAT_KEY,
    JSON,
    AnswerFormat,
    HttpError,
    endpoint,
    health,
    load_body,
    openapi_document,
)


def test_health_is_200_when_database_and_broker_answer():
    db = Database(max_size=1)
    try:
        response = health(db, env("AMQP_URI"))
        assert response.status_code == 200
    finally:
        db.close()


def test_health_is_503_naming_what_does_not_answer():
    db = Database(max_size=1)
    db.close()  # a pool that can no longer reach the database
    response = health(db, "amqp://guest:guest@127.0.0.1:1//")
    assert response.status_code == 503
    assert set(json.loads(response.get_data())["errors"]) == {"database", "broker"}


class Body(Schema):
    count = fields.Integer(required=True)


def request_with(data: bytes) -> Request:
    return Request(EnvironBuilder(method="POST", data=data,
                                  content_type="application/json").get_environ())


def test_bodies_are_validated_into_field_errors():
    assert load_body(request_with(b'{"count": 3}'), Body()) == {"count": 3}
    for data, field in ((b'{"count": "x"}', "count"), (b"[1]", "_"), (b"{", "_"),
                        (b'{"count": 1, "more": 2}', "more")):
        try:
            load_body(request_with(data), Body())
        except HttpError as error:
            assert error.status == 400 and field in error.errors
        else:
            raise AssertionError(f"{data!r} was accepted")


def test_an_endpoint_that_declares_nobody_refuses_everyone():
    from shared.access import ROLES, OfficeInPath, Principal, allowed

    callers = [Principal(role=role, id="x", office_id="owso-1201") for role in ROLES]
    callers.append(Principal(role="citizen", id="x"))
    assert not any(allowed((), caller, {"office_id": "owso-1201"}) for caller in callers)
    staff = Principal(role="staff", id="x", office_id="owso-1201")
    assert allowed((OfficeInPath(),), staff, {"office_id": "owso-1201"})
    assert not allowed((OfficeInPath(),), staff, {"office_id": "owso-1202"})


def test_json_nested_beyond_the_limit_is_a_400_without_parsing_it():
    from shared.web import MAX_JSON_DEPTH, nested_too_deep

    deep = "[" * 100_000 + "]" * 100_000
    assert nested_too_deep(deep)
    assert not nested_too_deep("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    # Brackets inside strings, escaped quotes included, are text, not nesting.
    assert not nested_too_deep(json.dumps({"text": "[" * 1000 + '\\"{' * 1000}))
    with pytest.raises(HttpError) as refused:
        load_body(request_with(('{"count": ' + deep + "}").encode()), Body())
    assert refused.value.status == 400
    assert refused.value.errors == {"_": [f"the body nests deeper than {MAX_JSON_DEPTH} levels"]}


def test_limits_from_the_environment_are_numbers_or_the_service_does_not_start(monkeypatch):
    monkeypatch.setenv("OURVOICE_MAX_BODY_BYTES", "2048")
    reload()
    assert settings().max_body_bytes == 2048
    monkeypatch.delenv("OURVOICE_MAX_BODY_BYTES")
    reload()
    assert settings().max_body_bytes == 1 << 20
    for bad in ("lots", "10", "1e9", "nan"):
        monkeypatch.setenv("OURVOICE_MAX_BODY_BYTES", bad)
        with pytest.raises(ValueError, match=f"OURVOICE_MAX_BODY_BYTES must be a whole number "
                                             f"of at least 1024, not '{bad}'"):
            reload()
    monkeypatch.delenv("OURVOICE_MAX_BODY_BYTES")
    monkeypatch.setenv("OURVOICE_HTTP_READ_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValueError, match="OURVOICE_HTTP_READ_TIMEOUT_SECONDS"):
        reload()


def test_an_operation_is_summed_up_by_its_first_sentence_and_described_by_the_rest():
    from shared import access
    from shared.web import endpoint, openapi_document

    class Service:
        @endpoint("POST", "/v1/things/{thing_id}/close", allow=(access.PUBLIC,))
        def close(self, request, thing_id):
            """Close the thing, with the reason: one the office cannot settle, or one
            moved as often as allowed. Its clock stops.

            Closed, it takes no more notes."""

        @endpoint("GET", "/v1/things/{thing_id}", allow=(access.PUBLIC,))
        def read(self, request, thing_id):
            """The thing as it stands (any thing, e.g. an old one)."""

        @endpoint("DELETE", "/v1/things/{thing_id}", allow=(access.PUBLIC,),
                  summary="Forget the thing")
        def forget(self, request, thing_id):
            """Not what callers read: the summary given is."""

        @endpoint("GET", "/health", allow=(access.PUBLIC,), summary="up")
        def health(self, request):
            pass

    paths = openapi_document(Service, "Things")["paths"]
    close = paths["/v1/things/{thing_id}/close"]["post"]
    assert close["summary"] == ("Close the thing, with the reason: one the office cannot "
                                "settle, or one moved as often as allowed.")
    assert close["description"] == "Its clock stops.\n\nClosed, it takes no more notes."
    thing = paths["/v1/things/{thing_id}"]
    assert thing["get"]["summary"] == "The thing as it stands (any thing, e.g. an old one)."
    assert "description" not in thing["get"]
    assert thing["delete"]["summary"] == "Forget the thing" and "description" not in thing["delete"]
    # By path, then by method in HTTP's order, whatever the handlers are called.
    assert list(paths) == ["/health", "/v1/things/{thing_id}", "/v1/things/{thing_id}/close"]
    assert list(thing) == ["get", "delete"]


class Shouted(AnswerFormat):
    """A format of a test's own: the answer and the errors as plain text."""

    name = "txt"
    suffix = ".txt"
    media_type = "text/plain"
    errors_schema_name = "ShoutedErrors"
    errors_schema = {"type": "string"}

    def answer(self, status, body, headers=None):
        return Response(str(body).upper(), status=status, mimetype=self.media_type)

    def errors(self, status, errors, headers=None):
        return Response(f"ERROR {status}", status=status, mimetype=self.media_type)


class Answers(Schema):
    word = fields.String(required=True)


class Speaking:
    @endpoint("GET", "/words/{word}", allow=(PUBLIC,), response=Answers,
              formats=(JSON, Shouted()))
    def word(self, request, word):
        """A word, in JSON or shouted."""
        if word == "none":
            raise HttpError(404, {"_": ["no such word"]})
        return {"word": word}


def test_an_endpoint_answers_in_the_format_of_its_route_from_one_body():
    def call(path: str, answers: AnswerFormat):
        request = Request(EnvironBuilder(path=path).get_environ())
        request.environ[FORMAT_KEY] = answers
        return Speaking.word(Speaking(), request, word=path.rsplit("/", 1)[1].split(".")[0])

    assert json.loads(call("/words/hello", JSON).get_data()) == {"word": "hello"}
    assert call("/words/hello.txt", Shouted()).get_data() == b"{'WORD': 'HELLO'}"
    missing = call("/words/none.txt", Shouted())
    assert (missing.status_code, missing.get_data()) == (404, b"ERROR 404")
    assert json.loads(call("/words/none", JSON).get_data()) == {
        "errors": {"_": ["no such word"]}}


def test_the_openapi_document_has_an_operation_per_format():
    paths = openapi_document(Speaking, "test")["paths"]
    assert set(paths) == {"/words/{word}", "/words/{word}.txt"}
    plain, shouted = paths["/words/{word}"]["get"], paths["/words/{word}.txt"]["get"]
    assert (plain["operationId"], shouted["operationId"]) == ("word", "word_txt")
    assert set(shouted["responses"]["200"]["content"]) == {"text/plain"}
    assert shouted["responses"]["404"]["content"]["text/plain"]["schema"] == {
        "$ref": "#/components/schemas/ShoutedErrors"}
    assert plain["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Errors"}
