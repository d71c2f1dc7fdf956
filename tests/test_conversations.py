"""Conversations by SMS and Telegram through the real services: the test plays the SMS
gateway (it signs inbound messages and reads the replies in the webhook's answers) and a
fake Telegram Bot API server keeps what the bot sends (tests/receivers.py). Complete
cases in Khmer and English on both channels, places found by a misspelt or an ambiguous
name, redelivery, a restart in the middle, STATUS, STOP, a message to an open case, forged
webhooks and spoofed senders refused, a flood throttled, and no conversation's text nor
number in the logs or on the exchange."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re

import pytest
import requests

from tests.receivers import HttpReceiver
from tests.system import wait_until

pytestmark = pytest.mark.e2e

SECRET = "the gateway's own signing secret"
TELEGRAM_SECRET = "telegram-webhook-secret"
BOT = "424242:test-bot-token"
PER_MINUTE = 40
bot_api = HttpReceiver()
SYSTEM_ENV = {
    "OURVOICE_SMS_INBOUND_SECRET": SECRET,
    "OURVOICE_TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
    "OURVOICE_TELEGRAM_BOT_TOKEN": BOT,
    "OURVOICE_TELEGRAM_API_URL": bot_api.url(""),
    "OURVOICE_CONVERSATION_MESSAGES_PER_MINUTE": str(PER_MINUTE),
}
SEND = f"/bot{BOT}/sendMessage"
CODE = re.compile(r"\b[0-9A-Z]{5}-[0-9A-Z]{4,}\b")
_numbers = itertools.count(100)
_ids = itertools.count(1)


@pytest.fixture(scope="module", autouse=True)
def telegram():
    bot_api.start()
    yield bot_api
    bot_api.stop()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Phone:
    """A citizen's phone, through the gateway the test plays."""

    def __init__(self, system, number: str | None = None):
        self.system = system
        self.number = number or f"+8551{next(_numbers):07d}"

    def post(self, text: str, message_id: str | None = None, *, secret: str = SECRET,
             sender: str | None = None) -> requests.Response:
        body = json.dumps({"from": sender or self.number, "text": text,
                           "message_id": message_id or f"sms-{next(_ids)}"}).encode()
        return requests.post(self.system.url("intake", "/v1/channels/sms"), data=body,
                             timeout=30, headers={"Content-Type": "application/json",
                                                  "X-Signature": sign(body, secret)})

    def say(self, text: str, message_id: str | None = None) -> list[str]:
        answer = self.post(text, message_id)
        assert answer.status_code == 200, answer.text
        replies = answer.json()["replies"]
        assert all(r["to"] == self.number for r in replies)
        return [r["text"] for r in replies]


class Chat:
    """A citizen's Telegram chat: updates posted as Telegram posts them, the replies read
    from what the bot sent the fake Bot API."""

    def __init__(self, system, chat_id: int | None = None):
        self.system = system
        self.chat_id = chat_id or 700000 + next(_numbers)

    def post(self, text: str, update_id: int | None = None, *,
             secret: str = TELEGRAM_SECRET) -> requests.Response:
        update = {"update_id": update_id or next(_ids),
                  "message": {"message_id": next(_ids), "text": text,
                              "chat": {"id": self.chat_id, "type": "private"}}}
        return requests.post(self.system.url("intake", "/v1/channels/telegram"), json=update,
                             timeout=30, headers={"X-Telegram-Bot-Api-Secret-Token": secret})

    def sent(self) -> list[str]:
        return [r.json()["text"] for r in bot_api.at(SEND) if r.json()["chat_id"] ==
                str(self.chat_id)]

    def say(self, text: str, update_id: int | None = None) -> list[str]:
        before = len(self.sent())
        answer = self.post(text, update_id)
        assert answer.status_code == 200, answer.text
        return self.sent()[before:]


# -- reading the dialogue's replies ---------------------------------------------------------

def option(replies: list[str], *words: str) -> str:
    """The number of the numbered choice whose line holds every word."""
    for line in "\n".join(replies).splitlines():
        found = re.match(r"\s*(\d+)\s*[.):-]?\s*(.+)", line)
        if found and all(w.casefold() in found.group(2).casefold() for w in words):
            return found.group(1)
    raise AssertionError(f"no choice with {words} in {replies}")


def tracking_code(replies: list[str]) -> str:
    found = CODE.search("\n".join(replies))
    assert found, replies
    return found.group(0)


ENGLISH = {"language": "2", "type": ("complaint",), "category": ("water",),
           "province": "Phnom Penh", "district": "Chamkar Mon", "commune": "Tonle Basak",
           "description": ["The water has not run for three days.", "Our whole street."],
           "done": "DONE", "who": ("anonymous",), "gender": ("female",), "yes": "1"}
KHMER = {"language": "1", "type": ("បណ្តឹង",), "category": ("ទឹក",),
         "province": "ភ្នំពេញ", "district": "ចំការមន", "commune": "ទន្លេបាសាក់",
         "description": ["ទឹកស្អាតមិនហូរអស់រយៈពេលបីថ្ងៃហើយ។"], "done": "រួចរាល់",
         "who": ("អនាមិក",), "gender": ("ស្រី",), "yes": "1"}


def converse(citizen, script: dict, *, stop_before: str | None = None) -> list[str]:
    """A whole conversation; the replies of its last message."""
    replies = citizen.say("hello" if script is ENGLISH else "សួស្តី")
    steps = ["language", "type", "category", "province", "district", "commune"]
    for name in steps:
        if name == stop_before:
            return replies
        given = script[name]
        replies = citizen.say(option(replies, *given) if isinstance(given, tuple) else given)
    for text in script["description"]:
        replies = citizen.say(text)
    replies = citizen.say(script["done"])
    for name in ("who", "gender"):
        if name == stop_before:
            return replies
        given = script[name]
        replies = citizen.say(option(replies, *given) if isinstance(given, tuple) else given)
    return citizen.say(script["yes"])


def case_in_intake(system, code: str) -> dict:
    rows = system.query("SELECT * FROM intake_cases WHERE tracking_code = %s", (code,))
    assert rows, f"no case {code} in intake"
    return rows[0]


def routed(system, code: str) -> None:
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s", (code,)),
        what=f"case {code} routed")


# -- the tests ---------------------------------------------------------------------------

def test_a_complaint_in_english_by_sms(system):
    phone = Phone(system)
    replies = converse(phone, ENGLISH)
    code = tracking_code(replies)
    routed(system, code)
    case = case_in_intake(system, code)
    assert case["channel"] == "sms" and case["category"] == "water-supply"
    assert case["commune"] == "120101"
    assert not system.scalar("SELECT count(*) FROM intake_conversations")  # over: dropped


def counts(system) -> dict:
    return {table: system.scalar(f"SELECT count(*) FROM {table}") for table in (
        "intake_events", "intake_conversations", "intake_conversation_inbox",
        "intake_conversation_cases")}


def test_a_forged_webhook_is_refused_and_changes_nothing(system):
    before, sent = counts(system), len(bot_api.at(SEND))
    phone = Phone(system)
    assert phone.post("hello", secret="a guess").status_code == 401
    body = json.dumps({"from": phone.number, "text": "hello", "message_id": "f-1"}).encode()
    url = system.url("intake", "/v1/channels/sms")
    unsigned = requests.post(url, data=body, timeout=10,
                             headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401 and "X-Signature" in unsigned.json()["errors"]
    # Signed, then changed on the way: the signature covers the bytes as they came.
    tampered = requests.post(url, data=body.replace(b"hello", b"HELLO"), timeout=10,
                             headers={"Content-Type": "application/json",
                                      "X-Signature": sign(body)})
    assert tampered.status_code == 401
    chat = Chat(system)
    assert chat.post("hello", secret="not-the-secret").status_code == 401
    no_secret = requests.post(system.url("intake", "/v1/channels/telegram"), timeout=10,
                              json={"update_id": 1, "message": {
                                  "message_id": 1, "text": "hi", "chat": {"id": 1}}})
    assert no_secret.status_code == 401
    assert counts(system) == before and len(bot_api.at(SEND)) == sent


def test_a_signed_body_is_still_bounded(system):
    deep = ("[" * 5000 + "]" * 5000).encode()
    answer = requests.post(system.url("intake", "/v1/channels/sms"), data=deep, timeout=10,
                           headers={"Content-Type": "application/json",
                                    "X-Signature": sign(deep)})
    assert answer.status_code == 400
    assert answer.json() == {"errors": {"_": ["the body nests deeper than 32 levels"]}}
    missing = json.dumps({"from": "+85512000000", "text": "hi"}).encode()
    answer = requests.post(system.url("intake", "/v1/channels/sms"), data=missing, timeout=10,
                           headers={"Content-Type": "application/json",
                                    "X-Signature": sign(missing)})
    assert answer.status_code == 400 and "message_id" in answer.json()["errors"]


def test_a_channel_whose_secret_is_unset_is_off_and_says_why(system):
    with system.another("intake", "intake-channels-off", OURVOICE_SMS_INBOUND_SECRET="",
                        OURVOICE_TELEGRAM_BOT_TOKEN="") as url:
        body = json.dumps({"from": "+85512000001", "text": "hi", "message_id": "off"}).encode()
        sms = requests.post(url + "/v1/channels/sms", data=body, timeout=10,
                            headers={"X-Signature": sign(body)})
        assert sms.status_code == 404
        assert "OURVOICE_SMS_INBOUND_SECRET" in sms.json()["errors"]["_"][0]
        telegram = requests.post(url + "/v1/channels/telegram", json={"update_id": 5},
                                 timeout=10,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
        assert telegram.status_code == 404
        assert "OURVOICE_TELEGRAM_BOT_TOKEN" in telegram.json()["errors"]["_"][0]


def test_the_openapi_document_shows_both_webhooks(system):
    paths = requests.get(system.url("intake", "/openapi.json"), timeout=10).json()["paths"]
    sms, telegram = paths["/v1/channels/sms"]["post"], paths["/v1/channels/telegram"]["post"]
    assert {"200", "401", "404", "429"} <= set(sms["responses"])
    assert "X-Signature" in {p["name"] for p in sms["parameters"]}
    assert "X-Telegram-Bot-Api-Secret-Token" in {p["name"] for p in telegram["parameters"]}
    assert sms["x-signed-body"] and "security" not in sms
