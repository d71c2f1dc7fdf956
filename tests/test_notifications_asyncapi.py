"""The AsyncAPI document of the public events (docs/asyncapi.yaml) against the marshmallow
schemas in shared/events.py: the document is generated from them, and this test fails as
soon as the two differ. After changing an event's schema, write the document again:

    .venv/bin/python -m tests.test_notifications_asyncapi
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from shared.events import (
    DATA_SCHEMAS,
    EVENT_TYPES,
    EXCHANGE,
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    UPCASTERS,
    WORDS,
    Envelope,
    routing_key,
)

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"

DESCRIPTION = """\
Every public event of Our Voice, as office systems receive it. Events are published
persistently to the durable topic exchange `ourvoice.events` with routing key
`<EventType>.<province>.<district>` (official geocodes): an office binds `*.12.1201`,
a province `*.12.*`, a reader of one event type `CaseRouted.#`.

A sensitive case's events (gender-based violence, abuse of power: the `sensitive`
categories) are the ombudsman's alone. They go under
`<EventType>.sensitive.<province>.<district>`, four words that an area's bindings never
match; only the ombudsman's subscribers bind them (`*.sensitive.12.1201`). Their envelope
says `"sensitive": true`, their data carries no words (`question`, `resolution`,
`findings`, `recommendation`, a transfer's `reason` and an escalation's `explanation` are
null) and no category (the bucket `sensitive`, with the `level` of the ombudsman, in
`CaseSubmitted`).

Every event that moves a case's deadlines carries `acknowledge_due` and `resolve_due` as
they are after it (null: not running); absent from events stored before they said so.

Bodies are UTF-8 JSON and never carry personal data. `event_id` is the same each time
the same stored event is published, so a subscriber drops copies by it. `schema_version`
is the version of the event's `data`; a newer version only adds fields, and the
services read older versions by upcasting them. Read the fields you need and ignore
the others.

The same events reach registered webhooks (see the README) as HTTP POST bodies, signed
with HMAC-SHA256."""


def _schemas() -> dict:
    """JSON Schemas of the envelope and of each event's data, from the marshmallow schemas
    that validate them (the same converter that writes the services' OpenAPI)."""
    spec = APISpec(title="events", version="1", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.schema("Envelope", schema=Envelope)
    for event_type in EVENT_TYPES:
        spec.components.schema(f"{event_type}Data", schema=DATA_SCHEMAS[event_type])
    return spec.to_dict()["components"]["schemas"]


def document() -> dict:
    schemas = _schemas()
    messages, sensitive_messages, components = {}, {}, {}
    for event_type in EVENT_TYPES:
        version = SCHEMA_VERSIONS.get(event_type, SCHEMA_VERSION)
        older = sorted(v for (kind, v) in UPCASTERS if kind == event_type)
        components[event_type] = {
            "name": event_type,
            "title": event_type,
            "summary": f"{event_type}, schema version {version}",
            **({"description": f"Older versions still read (upcast): "
                               f"{', '.join(map(str, older))}."} if older else {}),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/Headers"},
            "payload": {"allOf": [
                {"$ref": "#/components/schemas/Envelope"},
                {"type": "object", "properties": {
                    "event_type": {"type": "string", "const": event_type},
                    "schema_version": {"type": "integer", "const": version},
                    "data": {"$ref": f"#/components/schemas/{event_type}Data"}}},
            ]},
        }
        messages[event_type] = {"$ref": f"#/components/messages/{event_type}"}
        sensitive_messages[event_type] = {"$ref": f"#/components/messages/{event_type}"}
    schemas["Headers"] = {
        "type": "object",
        "properties": {
            "ourvoice-source": {"type": "string",
                                "description": "the service whose store recorded the event"},
            "ourvoice-position": {"type": "integer",
                                  "description": "its position in that store's log"},
        },
    }
    amqp = {"amqp": {"is": "routingKey", "bindingVersion": "0.3.0",
                     "exchange": {"name": EXCHANGE, "type": "topic", "durable": True,
                                  "autoDelete": False}}}
    # Persistent (delivery mode 2): a property of how the events are published, so of
    # the operation in AsyncAPI's AMQP binding, not of the message.
    persistent = {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}}
    area = {
        "province": {"description": "province code, 2 digits (12 is Phnom Penh)"},
        "district": {"description": "district code, 4 digits, starting with the province's"},
    }
    return {
        "asyncapi": "3.1.0",
        "info": {"title": "Our Voice events", "version": "1.0.0", "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "localhost:5672", "protocol": "amqp",
                              "description": "RabbitMQ (AMQP_URI)"}},
        "channels": {"events": {
            "address": "{event_type}.{province}.{district}",
            "title": EXCHANGE,
            "parameters": {"event_type": {"enum": list(EVENT_TYPES)}, **area},
            "messages": messages,
            "bindings": amqp,
        }, "sensitiveEvents": {
            "address": "{event_type}.sensitive.{province}.{district}",
            "title": f"{EXCHANGE}, sensitive cases",
            "description": "The events of sensitive cases, without words or category: for "
                           "the ombudsman's subscribers only.",
            "parameters": {"event_type": {"enum": list(EVENT_TYPES)}, **area},
            "messages": sensitive_messages,
            "bindings": amqp,
        }},
        "operations": {"receiveEvents": {
            "action": "receive",
            "title": "An office system receives the events of its area",
            "channel": {"$ref": "#/channels/events"},
            "messages": [{"$ref": f"#/channels/events/messages/{t}"} for t in EVENT_TYPES],
            "bindings": persistent,
        }, "receiveSensitiveEvents": {
            "action": "receive",
            "title": "An ombudsman's system receives the sensitive cases of its area",
            "channel": {"$ref": "#/channels/sensitiveEvents"},
            "messages": [{"$ref": f"#/channels/sensitiveEvents/messages/{t}"}
                         for t in EVENT_TYPES],
            "bindings": persistent,
        }},
        "components": {"messages": components, "schemas": schemas},
    }


class _Dumper(yaml.SafeDumper):
    """Writes text of several lines as a block, to be read like the README."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def render() -> str:
    return yaml.dump(document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def test_the_asyncapi_document_matches_the_event_schemas():
    written = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    expected = document()
    assert sorted(written["components"]["messages"]) == sorted(EVENT_TYPES)
    for event_type in EVENT_TYPES:
        assert written["components"]["schemas"][f"{event_type}Data"] == \
            expected["components"]["schemas"][f"{event_type}Data"], (
            f"{event_type} differs from shared/events.py; regenerate with "
            "python -m tests.test_notifications_asyncapi")
    assert written == expected, "regenerate with python -m tests.test_notifications_asyncapi"


def test_every_field_of_every_event_is_in_the_document():
    """Not only equal to what the generator says: each marshmallow field is there."""
    schemas = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))["components"]["schemas"]
    for event_type, schema in DATA_SCHEMAS.items():
        fields = schema().fields
        properties = schemas[f"{event_type}Data"].get("properties", {})
        assert set(properties) == set(fields), event_type
        required = {name for name, f in fields.items() if f.required}
        assert set(schemas[f"{event_type}Data"].get("required", [])) == required, event_type
    assert set(schemas["Envelope"]["properties"]) == set(Envelope().fields)


def test_the_document_says_where_sensitive_cases_go_and_that_they_carry_no_words():
    written = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    location = {"province": "12", "district": "1201", "commune": "120101"}
    address = written["channels"]["sensitiveEvents"]["address"]
    assert routing_key("CaseResolved", location, sensitive=True) == address.format(
        event_type="CaseResolved", **location)
    assert routing_key("CaseResolved", location) == written["channels"]["events"][
        "address"].format(event_type="CaseResolved", **location)
    schemas = written["components"]["schemas"]
    for event_type, words in WORDS.items():
        for name in words:
            assert schemas[f"{event_type}Data"]["properties"][name].get("nullable"), (
                event_type, name)
    assert "sensitive" in schemas["Envelope"]["properties"]


if __name__ == "__main__":
    DOCUMENT.parent.mkdir(exist_ok=True)
    DOCUMENT.write_text(render(), encoding="utf-8")
    print(f"wrote {DOCUMENT}", file=sys.stderr)
