"""The shared HTTP edge, against the real database and broker."""

from marshmallow import Schema, fields
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.config import env
from shared.db import Database
from shared.web import HttpError, health, load_body


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
    import json

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
