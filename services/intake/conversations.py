"""Conversations by SMS and Telegram: the adapters between a gateway's or a messenger's
webhook and the guided dialogue (services/intake/dialogue.py), and what they keep between
messages. Combined in service.Service.

One inbound message goes: the webhook's signature or secret checked (nothing is read
before), the message taken apart, answered again as before if it was delivered before,
the sender throttled, the dialogue's next turn taken on the sender's conversation, a
complete case recorded through the same path as the app's submissions, the replies sent
back (in the SMS webhook's answer; through the Bot API for Telegram).

What is kept, and for how long:
- `intake_conversations`: the state of a conversation under way, sealed with the master
  key, under an HMAC of the sender (never the number or chat id itself); deleted when the
  conversation ends, forgotten after OURVOICE_CONVERSATION_TTL;
- `intake_conversation_inbox`: each inbound message's id (an HMAC of it) with the replies
  it got, sealed, for as long, so a gateway's redelivery records nothing twice and gets
  the same answer;
- `intake_conversation_cases`: which sender's cases take messages from them, only for a
  citizen who chose to be contacted at that number (or that chat).

No log line and no event carries a conversation's text or its sender: the events are the
usual ones (CaseSubmitted with channel "sms" or "telegram")."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import requests
from eventlet.semaphore import Semaphore
from marshmallow import Schema, ValidationError, fields
from nameko.timer import timer
from werkzeug.wrappers import Request

from services.intake import dialogue, keys, readmodels
from services.intake.domain import FINAL, NotAllowed
from services.intake.schemas import Message, SubmitCase
from shared import access
from shared.limits import retry_after
from shared.offices import describe
from shared.phones import NotAPhoneNumber, e164
from shared.settings import settings
from shared.web import MAX_JSON_DEPTH, HttpError, endpoint, field_errors, nested_too_deep

log = logging.getLogger(__name__)

SMS, TELEGRAM = "sms", "telegram"
SIGNATURE = "X-Signature"
TELEGRAM_SECRET = "X-Telegram-Bot-Api-Secret-Token"
# Telegram waits for the webhook's answer; a reply that cannot be sent within this makes
# the update fail, and Telegram delivers it again (the same replies, nothing twice).
SEND_TIMEOUT = 10.0


def forget_every() -> float:
    """How often expired conversations and inbox rows are looked for: a few times within
    the TTL, at most once a minute."""
    return max(0.5, min(60.0, settings().conversation_ttl.total_seconds() / 4))


DDL = (
    """CREATE TABLE IF NOT EXISTS intake_conversations (
        channel text NOT NULL,
        sender_hash text NOT NULL,   -- HMAC of the number or chat id, never the thing itself
        state bytea NOT NULL,        -- sealed with the master key
        version integer NOT NULL DEFAULT 1,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (channel, sender_hash)
    )""",
    """CREATE TABLE IF NOT EXISTS intake_conversation_inbox (
        channel text NOT NULL,
        message_hash text NOT NULL,  -- HMAC of the gateway's message id or the update id
        replies bytea NOT NULL,      -- sealed
        received_at timestamptz NOT NULL,
        PRIMARY KEY (channel, message_hash)
    )""",
    """CREATE INDEX IF NOT EXISTS intake_conversation_inbox_received
        ON intake_conversation_inbox (received_at)""",
    """CREATE TABLE IF NOT EXISTS intake_conversation_cases (
        channel text NOT NULL,
        sender_hash text NOT NULL,
        case_id uuid NOT NULL,
        linked_at timestamptz NOT NULL,
        PRIMARY KEY (channel, sender_hash, case_id)
    )""",
)


# -- what the webhooks carry (for the OpenAPI document; the bodies are read as signed) ---

class SmsInbound(Schema):
    """An inbound SMS, with the default field names (OURVOICE_SMS_INBOUND_FIELDS renames
    them); JSON or a form."""

    message_id = fields.String(required=True, metadata={"description": "the gateway's id"})
    text = fields.String(required=True)
    from_ = fields.String(required=True, data_key="from",
                          metadata={"description": "the sender's number"})


class SmsReply(Schema):
    to = fields.String(required=True)
    text = fields.String(required=True)


class SmsReplies(Schema):
    replies = fields.List(fields.Nested(SmsReply), required=True)


class TelegramChat(Schema):
    id = fields.Integer(required=True)


class TelegramMessage(Schema):
    message_id = fields.Integer(required=True)
    chat = fields.Nested(TelegramChat, required=True)
    text = fields.String()


class TelegramUpdate(Schema):
    """A Bot API Update; only `message` with a `text` is taken, others are answered 200."""

    update_id = fields.Integer(required=True)
    message = fields.Nested(TelegramMessage)


class TelegramAnswer(Schema):
    ok = fields.Boolean(required=True)


# -- keys: the sender's and the message's HMACs, the sealed state --------------------------

def _hash(master: bytes, purpose: str, channel: str, value: str) -> str:
    return hmac.new(master, f"ourvoice-{purpose}:{channel}:{value}".encode(),
                    hashlib.sha256).hexdigest()


def sender_number(channel: str, sender: str) -> str:
    """The sender as the dialogue and the link know it: an SMS sender in E.164 (one
    number however the gateway writes it), a chat id as it is."""
    if channel != SMS:
        return sender
    try:
        return e164(sender)
    except NotAPhoneNumber:
        return sender.strip()


def sender_hash(master: bytes, channel: str, sender: str) -> str:
    return _hash(master, "conversation-sender", channel, sender_number(channel, sender))


def message_hash(master: bytes, channel: str, message_id: str) -> str:
    return _hash(master, "conversation-message", channel, message_id)


def _aad(what: str, channel: str, hashed: str) -> bytes:
    # Bound to its row: a sealed state copied onto another sender's row does not open.
    return f"ourvoice-{what}:{channel}:{hashed}".encode()


def seal(master: bytes, what: str, channel: str, hashed: str, value) -> bytes:
    plaintext = json.dumps(value, ensure_ascii=False).encode()
    return keys.seal(master, plaintext, _aad(what, channel, hashed))


def unseal(master: bytes, what: str, channel: str, hashed: str, sealed) -> object:
    return json.loads(keys.unseal(master, bytes(sealed), _aad(what, channel, hashed)))


# -- the tables ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Conversation:
    id: str  # names the conversation's submission (its idempotency key)
    state: dict
    version: int


class Store:
    """The conversations' tables, for one channel and sender at a time."""

    def __init__(self, db, master: bytes):
        self.db, self.master = db, master

    def replies_before(self, channel: str, message: str) -> list[str] | None:
        """The replies a message got when it was delivered before, or None."""
        with self.db.transaction() as cursor:
            cursor.execute("""SELECT replies FROM intake_conversation_inbox
                              WHERE channel = %s AND message_hash = %s""", (channel, message))
            row = cursor.fetchone()
        return None if row is None else unseal(self.master, "replies", channel, message,
                                               row["replies"])

    def conversation(self, channel: str, sender: str) -> Conversation | None:
        with self.db.transaction() as cursor:
            cursor.execute("""SELECT state, version FROM intake_conversations
                              WHERE channel = %s AND sender_hash = %s""", (channel, sender))
            row = cursor.fetchone()
        if row is None:
            return None
        kept = unseal(self.master, "conversation", channel, sender, row["state"])
        return Conversation(kept["id"], kept["dialogue"], row["version"])

    def keep(self, channel: str, sender: str, before: Conversation | None,
             after: Conversation | None, message: str, replies: list[str]) -> list[str]:
        """The conversation's new state (None: it is over) and the message's replies, in
        one transaction. A redelivery that raced this one (another instance) finds its
        replies kept first (Redelivered: those are the answer); another message of the
        sender's that moved the conversation on meanwhile, on another instance, makes
        this one Overtaken (nothing kept: the gateway sends it again)."""
        now = datetime.now(UTC)
        with self.db.transaction() as cursor:
            cursor.execute(
                """INSERT INTO intake_conversation_inbox (channel, message_hash, replies,
                       received_at) VALUES (%s, %s, %s, %s)
                   ON CONFLICT DO NOTHING RETURNING 1""",
                (channel, message, seal(self.master, "replies", channel, message, replies),
                 now))
            if cursor.fetchone() is None:
                raise Redelivered
            if after is None and before is not None:
                cursor.execute("""DELETE FROM intake_conversations WHERE channel = %s
                                  AND sender_hash = %s AND version = %s""",
                               (channel, sender, before.version))
            elif after is not None:
                sealed = seal(self.master, "conversation", channel, sender,
                              {"id": after.id, "dialogue": after.state})
                if before is None:
                    cursor.execute(
                        """INSERT INTO intake_conversations (channel, sender_hash, state,
                               version, updated_at) VALUES (%s, %s, %s, 1, %s)
                           ON CONFLICT DO NOTHING""", (channel, sender, sealed, now))
                else:
                    cursor.execute(
                        """UPDATE intake_conversations SET state = %s, version = version + 1,
                               updated_at = %s
                           WHERE channel = %s AND sender_hash = %s AND version = %s""",
                        (sealed, now, channel, sender, before.version))
            if (before is not None or after is not None) and cursor.rowcount != 1:
                raise Overtaken  # rolls back: nothing of this message is kept
        return replies

    def link(self, channel: str, sender: str, case_id: UUID) -> None:
        with self.db.transaction() as cursor:
            cursor.execute(
                """INSERT INTO intake_conversation_cases (channel, sender_hash, case_id,
                       linked_at) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                (channel, sender, case_id, datetime.now(UTC)))

    def linked(self, channel: str, sender: str) -> list[UUID]:
        """The sender's linked cases, the latest first."""
        with self.db.transaction() as cursor:
            cursor.execute("""SELECT case_id FROM intake_conversation_cases
                              WHERE channel = %s AND sender_hash = %s
                              ORDER BY linked_at DESC""", (channel, sender))
            return [row["case_id"] for row in cursor.fetchall()]

    def forget(self, before: datetime) -> tuple[int, int]:
        """Conversations left since `before`, and inbox rows older: (how many of each)."""
        with self.db.transaction() as cursor:
            cursor.execute("DELETE FROM intake_conversations WHERE updated_at < %s", (before,))
            conversations = cursor.rowcount
            cursor.execute("DELETE FROM intake_conversation_inbox WHERE received_at < %s",
                           (before,))
            return conversations, cursor.rowcount


class Redelivered(Exception):
    """The message was answered meanwhile (a redelivery racing the first delivery)."""


class Overtaken(Exception):
    """Another instance took a turn of the same conversation meanwhile (the sender's
    messages reached two instances at once): this message is to be delivered again."""


class Throttled(Exception):
    def __init__(self, wait: float):
        super().__init__(wait)
        self.wait = wait


class SenderLocks:
    """One message of a sender at a time in this process: the next waits for the
    previous one's turn to be kept (a gateway may post a sender's messages at once)."""

    def __init__(self):
        self.locks: dict[str, tuple[Semaphore, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        lock, users = self.locks.get(key, (None, 0))
        lock = lock or Semaphore(1)
        self.locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            lock_, users = self.locks[key]
            if users <= 1:
                del self.locks[key]
            else:
                self.locks[key] = (lock_, users - 1)


_locks = SenderLocks()


# -- the webhooks' bodies -------------------------------------------------------------------

def signed(secret: str, body: bytes, signature: str | None) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return signature is not None and hmac.compare_digest(expected.encode(),
                                                         signature.strip().encode())


def _json(text: str):
    """A webhook's JSON, bounded as every body is (shared.web.load_body)."""
    if nested_too_deep(text):
        raise HttpError(400, {"_": [f"the body nests deeper than {MAX_JSON_DEPTH} levels"]})
    try:
        return json.loads(text or "null")
    except RecursionError:
        raise ValueError from None


def sms_message(request: Request, names: dict[str, str]) -> tuple[str, str, str]:
    """(from, text, message_id) of an inbound SMS, JSON or a form, under the gateway's
    field names."""
    if request.mimetype == "application/x-www-form-urlencoded":
        given = request.form.to_dict()
    else:
        try:
            given = _json(request.get_data(as_text=True))
        except ValueError:
            raise HttpError(400, {"_": ["the body must be JSON or a form"]}) from None
        if not isinstance(given, dict):
            raise HttpError(400, {"_": ["the body must be a JSON object or a form"]})
    found, missing = {}, {}
    for ours, theirs in names.items():
        value = given.get(theirs)
        if isinstance(value, int | float) and not isinstance(value, bool) and ours != "text":
            value = str(value)
        if not isinstance(value, str) or (not value.strip() and ours != "text"):
            missing[theirs] = ["required, as text"]
        else:
            found[ours] = value
    if missing:
        raise HttpError(400, missing)
    return found["from"], found["text"], found["message_id"]


def telegram_message(body: bytes) -> tuple[str, str, str] | None:
    """(chat id, text, update id) of an Update carrying a text message; None for any
    other update (an edit, a photo, a member joining), which has nothing to answer."""
    try:
        update = _json(body.decode())
    except ValueError:
        raise HttpError(400, {"_": ["the body must be JSON"]}) from None
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int) \
            or isinstance(update.get("update_id"), bool):
        raise HttpError(400, {"update_id": ["an Update has a whole number update_id"]})
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    chat, text = message.get("chat"), message.get("text")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int | str) \
            or not isinstance(text, str):
        return None
    return str(chat["id"]), text, str(update["update_id"])


def send_on_telegram(chat_id: str, replies: list[str]) -> None:
    """Each reply through the Bot API's sendMessage; raises on the first that fails."""
    current = settings()
    url = f"{current.telegram_api_url.rstrip('/')}/bot{current.telegram_bot_token}/sendMessage"
    for text in replies:
        answer = requests.post(url, json={"chat_id": chat_id, "text": text},
                               timeout=SEND_TIMEOUT)
        if answer.status_code >= 300:
            raise ConnectionError(f"sendMessage answered {answer.status_code}")


def off(name: str, what: str) -> HttpError:
    """A channel its operator has not set up is not there (404), and says why: not a
    failure of ours to retry (a 5xx would have the gateway try again and again)."""
    return HttpError(404, {"_": [f"{what} conversations are off: {name} is not set"]})


# The adapter's own words (the dialogue's are in dialogue.py): a message the case does
# not take now (closed meanwhile, or it took all the messages it takes today).
NOT_ADDED = {
    "en": "Your message could not be added to case {code} now. Send NEW to send a new case.",
    "km": "សាររបស់អ្នកមិនអាចបន្ថែមទៅករណី {code} បានទេឥឡូវនេះ។ ដើម្បីផ្ញើករណីថ្មី ផ្ញើ NEW។",
}


def contactable_here(channel: str, sender: str, complainant: dict) -> bool:
    """Whether the citizen chose to be contacted where they wrote from: by SMS, at the
    very number they wrote from; on a messenger, at all (the chat is theirs)."""
    if complainant["anonymous"] or not complainant.get("consent_to_contact"):
        return False
    if channel != SMS:
        return True
    try:
        return e164(complainant.get("phone") or "") == sender_number(channel, sender)
    except NotAPhoneNumber:
        return False


# -- the STATUS reply -------------------------------------------------------------------------

def deadline(view: dict) -> str | None:
    """The next deadline the citizen waits for: the acknowledgement until the office has
    acknowledged, then the resolution."""
    due = view.get("acknowledge_due") if view.get("status") in ("submitted", "routed") \
        else None
    due = due or view.get("resolve_due")
    return due.date().isoformat() if isinstance(due, datetime) else (str(due)[:10] if due
                                                                      else None)


class Conversations:
    """The SMS gateway's and the Telegram bot's webhooks."""

    def _conversations(self) -> Store:
        return Store(self.db, self.master_key)

    @endpoint("POST", "/v1/channels/sms", allow=(access.PUBLIC,), signed_body=SmsInbound,
              response=SmsReplies,
              headers={SIGNATURE: {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"}},
              errors={401: "the signature is missing or wrong: nothing was done",
                      404: "SMS conversations are off: OURVOICE_SMS_INBOUND_SECRET is not set",
                      429: "too many messages from this sender; try again later",
                      503: "intake cannot answer now; the gateway may send it again"})
    def sms_inbound(self, request):
        """An inbound SMS from the gateway, signed (`X-Signature: sha256=<hex HMAC-SHA256 of
        the body>`); the replies to send are in the answer."""
        secret = settings().sms_inbound_secret
        if not secret:
            raise off("OURVOICE_SMS_INBOUND_SECRET", "SMS")
        if not signed(secret, request.get_data(), request.headers.get(SIGNATURE)):
            raise HttpError(401, {SIGNATURE: ["missing or wrong"]})
        sender, text, message_id = sms_message(request, settings().sms_inbound_fields)
        try:
            replies = self._converse(SMS, sender, message_id, text)
        except Throttled as throttled:
            wait = retry_after(throttled.wait)
            raise HttpError(429, {"_": [f"too many messages from this sender; try again in "
                                        f"{wait} s"]}, headers={"Retry-After": wait}) from None
        return {"replies": [{"to": sender, "text": reply} for reply in replies]}

    @endpoint("POST", "/v1/channels/telegram", allow=(access.PUBLIC,),
              signed_body=TelegramUpdate, response=TelegramAnswer,
              headers={TELEGRAM_SECRET: {"type": "string", "minLength": 1}},
              errors={401: "the secret token is missing or wrong: nothing was done",
                      404: "Telegram conversations are off: OURVOICE_TELEGRAM_SECRET_TOKEN or "
                           "OURVOICE_TELEGRAM_BOT_TOKEN is not set",
                      503: "a reply could not be sent: Telegram delivers the update again"})
    def telegram_update(self, request):
        """An update from the Telegram bot's webhook, with its secret token; the replies go
        through the Bot API's sendMessage."""
        current = settings()
        if not current.telegram_secret_token:
            raise off("OURVOICE_TELEGRAM_SECRET_TOKEN", "Telegram")
        if not current.telegram_bot_token:
            raise off("OURVOICE_TELEGRAM_BOT_TOKEN", "Telegram")
        given = request.headers.get(TELEGRAM_SECRET, "")
        if not hmac.compare_digest(given.encode(), current.telegram_secret_token.encode()):
            raise HttpError(401, {TELEGRAM_SECRET: ["missing or wrong"]})
        found = telegram_message(request.get_data())
        if found is None:
            return {"ok": True}
        chat_id, text, update_id = found
        try:
            replies = self._converse(TELEGRAM, chat_id, update_id, text)
        except Throttled:
            return {"ok": True}  # a flood gets no answer; Telegram must not deliver it again
        try:
            send_on_telegram(chat_id, replies)
        except (requests.RequestException, ConnectionError) as failure:
            log.warning("telegram: a reply could not be sent (%s); the update will come again",
                        type(failure).__name__ if isinstance(failure, requests.RequestException)
                        else failure)
            raise HttpError(503, {"_": ["a reply could not be sent; deliver the update "
                                        "again"]}, headers={"Retry-After": "1"}) from None
        return {"ok": True}

    # -- one message ---------------------------------------------------------------------
    def _converse(self, channel: str, sender: str, message_id: str, text: str) -> list[str]:
        """The replies to one inbound message; raises Throttled."""
        conversations = self._conversations()
        who = sender_hash(self.master_key, channel, sender)
        message = message_hash(self.master_key, channel, message_id)
        with _locks.hold(f"{channel}:{who}"):
            before = conversations.replies_before(channel, message)
            if before is not None:
                return before  # a redelivery: the same answer, nothing done again
            wait = self.limit.conversations.admit(f"{channel}:{who}")
            if wait is not None:
                raise Throttled(wait)
            conversation = conversations.conversation(channel, who)
            linked = self._open_linked(channel, who) if conversation is None else None
            turn = dialogue.step(conversation.state if conversation else None, text,
                                 sender_number(channel, sender) if channel == SMS else "",
                                 linked=linked is not None)
            conversation_id = conversation.id if conversation else str(uuid4())
            replies = list(turn.replies)
            if turn.submit is not None:
                replies += self._record_conversation(channel, sender, who, conversation_id, turn,
                                        conversation.state if conversation else None)
            elif turn.command is not None:
                replies += self._command(channel, who, turn, linked)
            after = None if turn.state is None else Conversation(
                conversation_id, turn.state, conversation.version + 1 if conversation else 1)
            try:
                return conversations.keep(channel, who, conversation, after, message, replies)
            except Redelivered:
                return conversations.replies_before(channel, message) or replies
            except Overtaken:
                raise HttpError(503, {"_": ["the conversation moved on meanwhile; send the "
                                            "message again"]},
                                headers={"Retry-After": "1"}) from None

    def _record_conversation(self, channel: str, sender: str, who: str, conversation_id: str,
                turn, state: dict | None) -> list[str]:
        """The dialogue's submission recorded as the app's are: the same validation, the
        same use case; its key names the conversation, so a redelivery records nothing
        twice."""
        language = turn.language
        try:
            payload = SubmitCase().load(turn.submit)
        except ValidationError as error:
            return [dialogue.refused_reply(language, field_errors(error))]
        try:
            submitted = self._submit(payload, f"{channel}:{who}:{conversation_id}",
                                     channel=channel)
        except HttpError as refused:
            return [dialogue.refused_reply(language, refused.errors)]
        if contactable_here(channel, sender, payload["complainant"]):
            self._conversations().link(channel, who, submitted["case_id"])
        case = self.store.case_by_id(submitted["case_id"])
        return dialogue.recorded(state, submitted["tracking_code"],
                                 bool(case and case.sensitive))

    def _open_linked(self, channel: str, who: str):
        """The sender's latest case that is still open, if they chose to be contacted
        from here."""
        for case_id in self._conversations().linked(channel, who):
            with self.db.transaction() as cursor:
                view = readmodels.status_of(cursor, case_id)
            if view is None or view["status"] not in FINAL:
                return case_id
        return None

    def _command(self, channel: str, who: str, turn, linked: UUID | None) -> list[str]:
        kind, argument = turn.command
        if kind == "status":
            return [self._status(channel, who, argument, turn.language)]
        if kind == "message" and linked is not None:
            case = self.store.case_by_id(linked)
            try:  # the same validation and use case as the app's message
                text = Message().load({"text": argument})["text"]
                self.store.send_message(linked, text, self._view, self.limit.messages,
                                        datetime.now(UTC))
            except (ValidationError, NotAllowed):
                return [NOT_ADDED[case.language].format(code=case.tracking_code)]
            return [dialogue.added_reply(case.language, case.tracking_code)]
        return []

    def _status(self, channel: str, who: str, code: str, language: str) -> str:
        """STATUS <code>: what the public Open311 read shows of any case but a sensitive
        one, whose status goes only to the number it was submitted from."""
        case = self.store.case_by_code(code)
        if case is None or (case.sensitive and case.id not in self._conversations().linked(
                channel, who)):
            return dialogue.status_reply(language, code, None, None, None)
        with self.db.transaction() as cursor:
            view, _ = readmodels.read(cursor, case.id)
        view = view or {"status": "submitted", "office_id": None}
        office = describe(view["office_id"]) if view.get("office_id") else None
        name = (office.name_km if language == "km" else office.name_en) if office else None
        return dialogue.status_reply(language, case.tracking_code,
                                     case.status_seen_by_citizen(view["status"]), name,
                                     deadline(view))

    @timer(interval=forget_every())
    def forget_conversations(self):
        """Conversations left longer than OURVOICE_CONVERSATION_TTL, and the replies kept
        for redeliveries as long, are deleted."""
        ttl: timedelta = settings().conversation_ttl
        conversations, inbox = self._conversations().forget(datetime.now(UTC) - ttl)
        if conversations or inbox:
            log.info("forgot %d conversations and %d inbound messages left since %s",
                     conversations, inbox, ttl)

