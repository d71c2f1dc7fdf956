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
from contextlib import contextmanager

import pytest
import requests
from kombu import Queue

from services.intake.dialogue import LANGUAGE_PROMPT, TEXTS
from shared.categories import categories
from shared.offices import describe
from shared.topology import EVENTS
from shared.tracking import case_id_for
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


WATER = categories()["water-supply"]
VIOLENCE = categories()["gender-based-violence"]
ENGLISH = {"greeting": "hello", "language": "2", "type": (TEXTS["en"]["complaint"],),
           "category": (WATER.name_en,), "province": "Phnom Penh", "district": "Chamkar Mon",
           "commune": "Tonle Basak",
           "description": ["The water has not run for three days.", "Our whole street."],
           "done": "DONE", "who": ("anonymous",), "gender": ("Female",), "yes": "1"}
KHMER = {"greeting": "សួស្តី", "language": "1", "type": (TEXTS["km"]["complaint"],),
         "category": (WATER.name_km,), "province": "ភ្នំពេញ", "district": "ចំការមន",
         "commune": "ទន្លេបាសាក់", "description": ["ទឹកស្អាតមិនហូរអស់រយៈពេលបីថ្ងៃហើយ។"],
         "done": "រួចរាល់", "who": ("អនាមិក",), "gender": ("ស្រី",), "yes": "1"}
CONTACTABLE = {"en": ("Yes",), "km": ("បាទ/ចាស",)}


def answer(citizen, replies: list[str], given) -> list[str]:
    """The choice that holds `given` (a tuple of words), turning the pages of a long list
    ("0" shows the next part), or `given` as typed."""
    if not isinstance(given, tuple):
        return citizen.say(given)
    for _ in range(10):
        try:
            return citizen.say(option(replies, *given))
        except AssertionError:
            if not re.search(r"^0 ", replies[-1], re.MULTILINE):
                raise
            replies = citizen.say("0")
    raise AssertionError(f"{given} on no page")


def converse(citizen, script: dict, *, until: str | None = None, **changes) -> list[str]:
    """A whole conversation (or up to the step `until`); the replies of its last message."""
    script = {**script, **changes}
    replies = citizen.say(script["greeting"])
    for name in ("language", "type", "category", "province", "district", "commune",
                 "description", "done", "who", "phone", "gender", "yes"):
        if name == until:
            return replies
        if name == "phone" and "phone" not in script:
            continue
        if name == "description":
            for text in script["description"]:
                replies = citizen.say(text)
            continue
        replies = answer(citizen, replies, script[name])
    return replies


def case_in_intake(system, code: str) -> dict:
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM intake_cases WHERE tracking_code = %s", (code,)),
        what=f"case {code} in intake's case list")
    return system.query("SELECT * FROM intake_cases WHERE tracking_code = %s", (code,))[0]


def routed(system, code: str) -> None:
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s", (code,)),
        what=f"case {code} routed")
    wait_until(lambda: system.scalar(
        "SELECT office_id FROM intake_case_view WHERE case_id = %s", (case_id_for(code),)),
        what="intake's view of the case routed")


def stored_events(system, code: str) -> list[str]:
    return [r["topic"].rsplit(".", 1)[-1] for r in system.query(
        "SELECT topic FROM intake_events WHERE originator_id = %s ORDER BY originator_version",
        (case_id_for(code),))]


def conversations_of(system) -> int:
    return system.scalar("SELECT count(*) FROM intake_conversations")


# -- complete cases ------------------------------------------------------------------------

def test_a_complaint_in_english_by_sms(system):
    phone = Phone(system)
    replies = converse(phone, ENGLISH)
    code = tracking_code(replies)
    assert "STATUS" in replies[0]
    case = case_in_intake(system, code)
    assert (case["channel"], case["type"], case["category"], case["commune"]) == (
        "sms", "complaint", "water-supply", "120101")
    assert case["public_description"] == "\n".join(ENGLISH["description"])
    routed(system, code)
    assert stored_events(system, code) == ["CaseSubmitted"]


def test_a_complaint_in_khmer_by_sms_from_a_contactable_number(system):
    phone = Phone(system)
    replies = converse(phone, KHMER, who=CONTACTABLE["km"])
    code = tracking_code(replies)
    assert "លេខតាមដាន" in replies[0]
    case = case_in_intake(system, code)
    assert case["channel"] == "sms" and case["commune"] == "120101"
    assert system.scalar("SELECT count(*) FROM intake_conversation_cases WHERE case_id = %s",
                         (case_id_for(code),)) == 1


def test_a_complaint_in_english_by_telegram(system):
    chat = Chat(system)
    replies = converse(chat, ENGLISH)
    code = tracking_code(replies)
    case = case_in_intake(system, code)
    assert case["channel"] == "telegram" and case["category"] == "water-supply"
    assert all(r.headers.get("Content-Type", "").startswith("application/json")
               for r in bot_api.at(SEND))


def test_a_sensitive_complaint_in_khmer_by_telegram_answers_with_the_hotlines(system):
    chat = Chat(system)
    replies = converse(chat, KHMER, category=(VIOLENCE.name_km,), who=CONTACTABLE["km"],
                       phone="012 777 888")
    code = tracking_code(replies)
    assert len(replies) == 2 and "1280" in replies[1] and "1288" in replies[1]
    case = case_in_intake(system, code)
    assert case["channel"] == "telegram" and case["sensitive"]
    # Contactable by phone, so the chat it was written from is linked to it.
    assert system.scalar("SELECT count(*) FROM intake_conversation_cases WHERE case_id = %s",
                         (case_id_for(code),)) == 1


# -- places -------------------------------------------------------------------------------

def test_a_place_is_found_by_a_misspelt_name(system):
    phone = Phone(system)
    replies = converse(phone, ENGLISH, until="province")
    replies = phone.say("Batambang")  # Battambang, a letter missed
    assert "Battambang" in replies[0] and "district" in replies[0].casefold()
    replies = phone.say("Seam Reap")  # not a district of Battambang: asked again
    assert "district" in replies[0].casefold()
    assert phone.say("STOP") == [TEXTS["en"]["stopped"]]


def test_an_ambiguous_name_is_offered_as_choices_and_resolved(system):
    phone = Phone(system)
    converse(phone, ENGLISH, until="province")
    phone.say("Battambang")
    # Chrey is a commune in two districts of Battambang: both are offered.
    replies = phone.say("Chrey")
    assert TEXTS["en"]["which"] in replies[0]
    choice = option(replies, "Chrey", "Thma Koul")
    replies = phone.say(choice)
    assert TEXTS["en"]["describe_complaint"] in replies[0]
    for text in ("The well is dry.",):
        phone.say(text)
    replies = answer(phone, phone.say("DONE"), ("anonymous",))
    replies = answer(phone, replies, ("Male",))
    assert "Chrey" in "\n".join(replies)
    code = tracking_code(phone.say("1"))
    assert case_in_intake(system, code)["commune"] == "020204"


# -- redelivery and restart ------------------------------------------------------------------

def test_a_redelivered_message_records_nothing_twice_and_gets_the_same_replies(system):
    phone = Phone(system)
    replies = converse(phone, ENGLISH, until="yes")
    inbox, events = (system.scalar("SELECT count(*) FROM intake_conversation_inbox"),
                     system.scalar("SELECT count(*) FROM intake_events"))
    first = phone.say("1", message_id="confirm-once")
    code = tracking_code(first)
    again = phone.say("1", message_id="confirm-once")
    assert again == first
    assert system.scalar("SELECT count(*) FROM intake_events") == events + 1
    assert system.scalar("SELECT count(*) FROM intake_conversation_inbox") == inbox + 1
    assert system.scalar("SELECT count(*) FROM intake_cases WHERE tracking_code = %s",
                         (code,)) <= 1
    # A redelivered question gets its answer again, and the conversation does not move on.
    other = Phone(system)
    start = other.say("hello", message_id="greeting")
    assert other.say("hello", message_id="greeting") == start
    chat = Chat(system)
    first = chat.say("hello", update_id=990001)
    assert chat.say("hello", update_id=990001) == first  # sent again: Telegram asked again
    assert chat.say("1") and TEXTS["km"]["type"] in chat.sent()[-1]
    case_in_intake(system, code)
    assert replies


def test_a_conversation_goes_on_after_intake_restarts(system):
    phone, chat = Phone(system), Chat(system)
    converse(phone, ENGLISH, until="commune")
    converse(chat, KHMER, until="description")
    system.stop("intake")
    system.start("intake")
    replies = phone.say("Tonle Basak")
    assert TEXTS["en"]["describe_complaint"] in replies[0]
    for text in ENGLISH["description"]:
        phone.say(text)
    replies = answer(phone, phone.say("DONE"), ("anonymous",))
    replies = answer(phone, replies, ("Female",))
    assert case_in_intake(system, tracking_code(phone.say("1")))["channel"] == "sms"
    for text in KHMER["description"]:
        chat.say(text)
    replies = answer(chat, chat.say("រួចរាល់"), ("អនាមិក",))
    replies = answer(chat, replies, ("ស្រី",))
    assert case_in_intake(system, tracking_code(chat.say("1")))["channel"] == "telegram"


def test_a_reply_telegram_did_not_take_is_sent_again_when_the_update_comes_again(system):
    chat = Chat(system)
    bot_api.status[SEND] = 502
    try:
        refused = chat.post("hello", update_id=880001)
    finally:
        bot_api.status.pop(SEND)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert chat.sent() == []
    # Telegram delivers the update again: the reply kept for it goes out, and the
    # conversation has moved on once only.
    assert chat.say("hello", update_id=880001) == [LANGUAGE_PROMPT]
    assert TEXTS["en"]["type"] in chat.say("2")[0]


# -- commands -----------------------------------------------------------------------------

def test_status_answers_in_words_with_the_office_and_the_deadline(system):
    code = tracking_code(converse(Phone(system), ENGLISH))
    routed(system, code)
    view = system.query("SELECT * FROM intake_case_view WHERE case_id = %s",
                        (case_id_for(code),))[0]
    office = describe(view["office_id"])
    replies = Phone(system).say(f"status {code.lower()}")
    assert len(replies) == 1 and code in replies[0]
    assert office.name_en in replies[0] and "Expected by" in replies[0]
    khmer = Phone(system).say(f"ស្ថានភាព {code}")
    assert office.name_km in khmer[0] and code in khmer[0]
    assert Phone(system).say("STATUS ABCDE-23456") == [
        TEXTS["en"]["no_case"].format(code="ABCDE-23456")]
    # In the middle of a conversation: answered, and the conversation goes on.
    phone = Phone(system)
    listed = converse(phone, ENGLISH, until="category")
    assert code in phone.say(f"STATUS {code}")[0]
    assert TEXTS["en"]["province"] in answer(phone, listed, (WATER.name_en,))[0]


def test_stop_ends_the_conversation_and_drops_its_state(system):
    phone = Phone(system)
    before = conversations_of(system)
    converse(phone, KHMER, until="done")
    assert conversations_of(system) == before + 1
    assert phone.say("ឈប់") == [TEXTS["km"]["stopped"]]
    assert conversations_of(system) == before
    assert phone.say("hello") == [LANGUAGE_PROMPT]  # a new conversation from the start
    assert phone.say("cancel") == [TEXTS["en"]["stopped"]]
    assert conversations_of(system) == before


def test_a_message_from_the_linked_number_reaches_the_open_case_and_nobody_elses(system):
    phone = Phone(system)
    code = tracking_code(converse(phone, ENGLISH, who=CONTACTABLE["en"]))
    routed(system, code)
    assert phone.say("The water came back for one hour this morning.") == [
        TEXTS["en"]["added"].format(code=code)]
    assert stored_events(system, code) == ["CaseSubmitted", "InformationProvided"]
    # Another number's text starts a conversation of its own; it reaches no case.
    stranger = Phone(system)
    assert stranger.say("Add this to the case of my neighbour.") == [LANGUAGE_PROMPT]
    assert stranger.say("STOP")
    # Nor does the linked number spoofed on a webhook that is not the gateway's.
    forged = Phone(system, phone.number).post("A forged message.", secret="a guess")
    assert forged.status_code == 401
    assert stored_events(system, code) == ["CaseSubmitted", "InformationProvided"]
    # An anonymous sender's text is never a message to a case.
    anonymous = Phone(system)
    tracking_code(converse(anonymous, ENGLISH))
    assert anonymous.say("One more thing.") == [LANGUAGE_PROMPT]
    anonymous.say("STOP")
    # NEW starts a new case from the linked number.
    assert phone.say("NEW") == [LANGUAGE_PROMPT]
    phone.say("STOP")


# -- floods ----------------------------------------------------------------------------------

def test_a_flood_from_one_number_is_throttled_and_changes_nothing(system):
    phone = Phone(system)
    inbox = system.scalar("SELECT count(*) FROM intake_conversation_inbox")
    answers = [phone.post("HELP") for _ in range(PER_MINUTE + 15)]
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) <= PER_MINUTE + 2 and statuses.count(429) >= 10, statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert system.scalar("SELECT count(*) FROM intake_conversation_inbox") == \
        inbox + statuses.count(200)
    # Another number is not held up.
    assert Phone(system).say("HELP")
    chat = Chat(system)
    for _ in range(PER_MINUTE + 10):
        assert chat.post("HELP").status_code == 200  # Telegram must not deliver it again
    assert len(chat.sent()) <= PER_MINUTE + 2


# -- privacy ---------------------------------------------------------------------------------

@contextmanager
def tap(system):
    """Every message published on the events exchange from now on."""
    with system.broker() as connection:
        queue = Queue("probe.conversations", exchange=EVENTS, routing_key="#",
                      durable=False, auto_delete=False)
        bound = queue(connection.default_channel)
        bound.declare()
        bodies: list[str] = []

        def drain() -> list[str]:
            while (message := bound.get(no_ack=True)) is not None:
                body = message.body
                bodies.append(body.decode() if isinstance(body, bytes) else body)
            return bodies

        try:
            yield drain
        finally:
            bound.delete()


def test_no_number_nor_conversation_text_in_the_logs_or_the_events(system):
    secret_words = "Sokha's cousin at the water office took 20000 riel"
    with tap(system) as published:
        phone = Phone(system, "+855 12 654 321")
        code = tracking_code(converse(phone, ENGLISH, who=CONTACTABLE["en"]))
        routed(system, code)
        phone.say("My neighbour Dara saw it too.")
        stopped = Phone(system, "+855 97 111 2223")
        converse(stopped, ENGLISH, until="done", description=[secret_words])
        stopped.say("STOP")
        chat = Chat(system, 5550123)
        tracking_code(converse(chat, ENGLISH))
        wait_until(lambda: any(code in body for body in published()), what="events")
        bodies = "\n".join(published())
    numbers = ["12654321", "654321", "971112223", "5550123"]
    needles = [*numbers, secret_words, "Sokha", "Dara"]
    assert not [n for n in needles if n in bodies.replace(" ", "")
                or n in bodies], "in the published events"
    assert "sms" in bodies and "telegram" in bodies  # the channel, and nothing more
    for log in system.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not [n for n in needles if n in text], log.name
    # In the tables, only sealed: the stopped conversation's words nowhere, the numbers
    # only as HMACs (the contactable case's phone is sealed with its key, as the app's).
    for table in ("intake_conversations", "intake_conversation_inbox",
                  "intake_conversation_cases"):
        for row in system.query(f"SELECT * FROM {table}"):
            text = " ".join(bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview)
                            else str(v) for v in row.values())
            assert not [n for n in needles if n in text], table


def test_a_conversation_left_too_long_is_forgotten(system):
    """Last: an instance with a TTL of one second forgets every old conversation."""
    phone = Phone(system)
    converse(phone, ENGLISH, until="type")
    assert conversations_of(system) >= 1
    with system.another("intake", "intake-short-ttl", OURVOICE_CONVERSATION_TTL="PT1S"):
        wait_until(lambda: conversations_of(system) == 0, timeout=20,
                   what="conversations forgotten")
        wait_until(lambda: system.scalar(
            "SELECT count(*) FROM intake_conversation_inbox") == 0, timeout=20,
            what="inbox forgotten")
    # The next message starts afresh: "1" is Khmer now, not the first case type.
    assert TEXTS["km"]["type"] in phone.say("1")[0]


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
