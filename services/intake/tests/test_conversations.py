"""The conversations' adapters without the services: signatures, the webhooks' bodies,
what identifies a sender, the sealed state, and their settings."""

import hashlib
import hmac
import json
from datetime import UTC, datetime

import eventlet
import pytest
from cryptography.exceptions import InvalidTag
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.intake import conversations
from services.intake.conversations import (
    SMS,
    TELEGRAM,
    SenderLocks,
    deadline,
    message_hash,
    seal,
    sender_hash,
    signed,
    sms_message,
    telegram_message,
    unseal,
)
from shared.settings import SettingsError, load
from shared.web import HttpError

MASTER = b"m" * 32
DEFAULT_NAMES = {"from": "from", "text": "text", "message_id": "message_id"}


def request(body, content_type="application/json") -> Request:
    data = body if isinstance(body, str) else json.dumps(body)
    return Request(EnvironBuilder(method="POST", data=data, content_type=content_type)
                   .get_environ())


def test_a_signature_is_the_hmac_of_the_body_as_it_came():
    body = b'{"from": "+85512345678", "text": "hello", "message_id": "1"}'
    good = "sha256=" + hmac.new(b"gateway secret", body, hashlib.sha256).hexdigest()
    assert signed("gateway secret", body, good)
    assert signed("gateway secret", body, f"  {good} ")
    assert not signed("gateway secret", body + b" ", good)  # one byte more
    assert not signed("another secret", body, good)
    assert not signed("gateway secret", body, None)
    assert not signed("gateway secret", body, good.replace("sha256=", ""))


def test_an_inbound_sms_is_json_or_a_form_under_the_gateways_names():
    assert sms_message(request({"from": "012 345 678", "text": "1", "message_id": 77}),
                       DEFAULT_NAMES) == ("012 345 678", "1", "77")
    names = {"from": "msisdn", "text": "body", "message_id": "id"}
    form = request("msisdn=%2B85512345678&body=%E1%9E%81&id=abc",
                   "application/x-www-form-urlencoded")
    assert sms_message(form, names) == ("+85512345678", "ខ", "abc")
    with pytest.raises(HttpError) as refused:
        sms_message(request({"from": "012", "message_id": ""}), DEFAULT_NAMES)
    assert refused.value.status == 400 and set(refused.value.errors) == {"text", "message_id"}
    for wrong in ([1, 2], "not json"):
        with pytest.raises(HttpError):
            sms_message(request(wrong), DEFAULT_NAMES)


def test_a_telegram_update_gives_its_chat_text_and_id_or_nothing_to_answer():
    update = {"update_id": 10, "message": {"message_id": 3, "chat": {"id": 42}, "text": "hi"}}
    assert telegram_message(json.dumps(update).encode()) == ("42", "hi", "10")
    photo = {"update_id": 11, "message": {"message_id": 4, "chat": {"id": 42}, "photo": []}}
    assert telegram_message(json.dumps(photo).encode()) is None
    assert telegram_message(b'{"update_id": 12, "edited_message": {}}') is None
    for wrong in (b"[]", b'{"update_id": "x"}', b'{"update_id": true}', b"{"):
        with pytest.raises(HttpError):
            telegram_message(wrong)


def test_a_sender_is_kept_as_an_hmac_the_same_however_the_number_is_written():
    written = ["012 345 678", "+855 12 345 678", "0085512345678"]
    hashes = {sender_hash(MASTER, SMS, number) for number in written}
    assert len(hashes) == 1
    (one,) = hashes
    assert "12345678" not in one and len(one) == 64
    assert sender_hash(MASTER, TELEGRAM, "012345678") != one  # each channel its own
    assert sender_hash(b"x" * 32, SMS, "012 345 678") != one  # keyed
    assert message_hash(MASTER, SMS, "1") != message_hash(MASTER, TELEGRAM, "1")


def test_a_sealed_state_opens_only_on_its_own_row():
    state = {"id": "c1", "dialogue": {"description": ["ផ្លូវខូច"], "phone": "+85512345678"}}
    sealed = seal(MASTER, "conversation", SMS, "a" * 64, state)
    assert b"85512345678" not in sealed and "ផ្លូវ".encode() not in sealed
    assert unseal(MASTER, "conversation", SMS, "a" * 64, sealed) == state
    for where in ((SMS, "b" * 64), (TELEGRAM, "a" * 64)):
        with pytest.raises(InvalidTag):
            unseal(MASTER, "conversation", *where, sealed)
    with pytest.raises(InvalidTag):
        unseal(MASTER, "replies", SMS, "a" * 64, sealed)


def test_one_message_of_a_sender_at_a_time_and_nothing_kept_after():
    locks, order = SenderLocks(), []

    def message(name, pause):
        with locks.hold("sms:one"):
            order.append(f"{name} in")
            eventlet.sleep(pause)
            order.append(f"{name} out")

    first = eventlet.spawn(message, "first", 0.05)
    eventlet.sleep(0)
    second = eventlet.spawn(message, "second", 0)
    with locks.hold("sms:another"):  # another sender does not wait
        order.append("another")
    first.wait()
    second.wait()
    assert order == ["first in", "another", "first out", "second in", "second out"]
    assert locks.locks == {}


def test_the_deadline_told_is_the_next_one_the_citizen_waits_for():
    ack, resolve = datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 5, 20, tzinfo=UTC)
    view = {"acknowledge_due": ack, "resolve_due": resolve}
    assert deadline({**view, "status": "routed"}) == "2026-05-02"
    assert deadline({**view, "status": "acknowledged"}) == "2026-05-20"
    assert deadline({"status": "submitted"}) is None


def test_the_conversation_settings_and_their_defaults():
    current = load({})
    assert current.sms_inbound_fields == DEFAULT_NAMES
    assert current.sms_inbound_secret is None and current.telegram_secret_token is None
    assert current.telegram_api_url == "https://api.telegram.org"
    assert current.conversation_ttl.total_seconds() == 24 * 3600
    assert current.conversation_messages_per_minute == 20
    renamed = load({"OURVOICE_SMS_INBOUND_FIELDS":
                    '{"from": "msisdn", "text": "body", "message_id": "id"}'})
    assert renamed.sms_inbound_fields["from"] == "msisdn"
    for wrong in ('{"from": "msisdn"}', '["from"]', '{"from": "a", "text": "", '
                  '"message_id": "c"}', "{"):
        with pytest.raises(SettingsError, match="OURVOICE_SMS_INBOUND_FIELDS"):
            load({"OURVOICE_SMS_INBOUND_FIELDS": wrong})
    with pytest.raises(SettingsError) as refused:
        load({"OURVOICE_SMS_INBOUND_SECRET": "s3cret", "OURVOICE_CONVERSATION_TTL": "a day"})
    assert "s3cret" not in str(refused.value)


def test_the_tables_keep_no_sender_nor_text_in_clear():
    ddl = " ".join(conversations.DDL)
    assert "sender_hash" in ddl and "phone" not in ddl and " text text" not in ddl


def test_a_webhook_body_nested_too_deep_is_a_400_before_it_is_parsed():
    deep = "[" * 5000 + "]" * 5000
    for parse in (lambda: sms_message(request(deep, "application/json"), DEFAULT_NAMES),
                  lambda: telegram_message(deep.encode())):
        with pytest.raises(HttpError) as refused:
            parse()
        assert refused.value.status == 400 and "nests deeper" in refused.value.errors["_"][0]


def test_a_sender_is_linked_to_their_case_only_when_contactable_where_they_wrote_from():
    from services.intake.conversations import contactable_here

    yes = {"anonymous": False, "consent_to_contact": True, "phone": "012 345 678"}
    assert contactable_here(SMS, "+85512345678", yes)
    assert not contactable_here(SMS, "+85512999999", yes)  # another number given
    assert not contactable_here(SMS, "+85512345678", {**yes, "consent_to_contact": False})
    assert not contactable_here(SMS, "+85512345678", {"anonymous": True})
    assert contactable_here(TELEGRAM, "4242", yes)
    assert not contactable_here(TELEGRAM, "4242", {**yes, "anonymous": True})


def test_the_channels_secrets_are_masked_when_shown():
    from shared.settings import MASK, SETTINGS, shown

    for name in ("OURVOICE_SMS_INBOUND_SECRET", "OURVOICE_TELEGRAM_SECRET_TOKEN",
                 "OURVOICE_TELEGRAM_BOT_TOKEN"):
        assert SETTINGS[name].secret and shown(SETTINGS[name], "123:abc") == MASK
