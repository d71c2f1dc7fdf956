"""The channels a message leaves by: email over SMTP, SMS through an HTTP gateway, and
webhooks to office systems. Each send either returns (the receiver accepted it) or
raises `SendFailed` with a description that names no person: errors are recorded in
events and logs, where contact data must never appear."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import smtplib
import socket
import ssl
import string
import threading
import time
from dataclasses import dataclass
from email.charset import BASE64, QP, Charset
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr

import requests

from shared.settings import DEFAULT_SMS_BODY, settings

DELIVERY_HEADER = "X-OurVoice-Delivery"
EVENT_HEADER = "X-OurVoice-Event"
TIMESTAMP_HEADER = "X-OurVoice-Timestamp"
SIGNATURE_HEADER = "X-OurVoice-Signature"
MESSAGE_ID_DOMAIN = "notifications.ourvoice"


class SendFailed(Exception):
    """The receiver did not accept the message; the text is safe to record."""


def message_id(delivery_id: str) -> str:
    """The same Message-ID on every try of a delivery, so a mailbox can drop a copy."""
    return f"<{delivery_id}@{MESSAGE_ID_DOMAIN}>"


# -- email -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 1025
    sender: str = "Our Voice <no-reply@ourvoice.local>"
    user: str = ""
    password: str = ""
    starttls: bool = False
    timeout: float = 10.0
    connections: int = 8
    # The name we greet the server with. Left to smtplib it is looked up in DNS on every
    # connection, which can take seconds where DNS is slow or absent.
    helo: str = ""

    @classmethod
    def from_env(cls) -> SmtpSettings:
        current = settings()
        return cls(
            host=current.smtp_host, port=current.smtp_port, sender=current.smtp_from,
            user=current.smtp_user, password=current.smtp_password,
            starttls=current.smtp_starttls, timeout=current.notifications_send_timeout,
            connections=current.smtp_connections,
            helo=current.smtp_helo_name or socket.gethostname(),
        )


# Messages are made with the classic email API: the newer one parses back every header
# it is given and again when it writes the message out, which cost more of a backlog's
# CPU than anything else the sender does (1.1 ms a message against 0.26 ms). What the
# newer API did well is kept: the body's encoding is chosen as it would choose it, and a
# Subject's ASCII words (the tracking code) stay readable.

def _utf8(body_encoding) -> Charset:
    charset = Charset("utf-8")
    charset.body_encoding = body_encoding
    return charset


# A body goes as it is while its lines are short (7 or 8 bit), else quoted-printable
# when ASCII, base64 when not.
AS_IT_IS, QUOTED, BASE64_UTF8 = _utf8(None), _utf8(QP), _utf8(BASE64)
LONGEST_LINE = 78


def plain_text(text: str) -> MIMEText:
    if not text.endswith("\n"):
        text += "\n"
    longest = max(len(line) for line in text.encode().splitlines())
    charset = AS_IT_IS if longest <= LONGEST_LINE else QUOTED if text.isascii() else BASE64_UTF8
    return MIMEText(text, "plain", charset)


def subject_header(subject: str) -> Header:
    """Runs of ASCII words as they are, runs of other words as UTF-8 encoded words: a
    mail client shows the same Subject, and the tracking code is readable in the raw
    message too (for a search of the mailbox, a filter, an operator's look)."""
    runs: list[tuple[bool, str]] = []
    for word in subject.split():
        if runs and runs[-1][0] == word.isascii():
            runs[-1] = (runs[-1][0], f"{runs[-1][1]} {word}")
        else:
            runs.append((word.isascii(), word))
    header = Header(header_name="Subject")
    for ascii_only, text in runs:
        header.append(text, "us-ascii" if ascii_only else "utf-8")
    return header


def ascii_address(address: str) -> str:
    """An address as any SMTP server takes it: an internationalised domain in its IDNA
    form. A mailbox name in another script needs SMTPUTF8, which is not used here."""
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    try:
        if not local.isascii():
            raise UnicodeError
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        raise SendFailed("email address not in ASCII") from None


class Email:
    """SMTP with a few connections kept open: opening one per message would cost more
    than the message. Sends beyond that many wait for a connection to come free instead
    of opening one more that would be closed after its one message."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.idle: queue.LifoQueue[smtplib.SMTP] = queue.LifoQueue()
        self.open = threading.BoundedSemaphore(settings.connections)  # green under nameko
        self.sender = formataddr(parseaddr(settings.sender), charset="utf-8")

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        connection = smtplib.SMTP(s.host, s.port, local_hostname=s.helo or socket.gethostname(),
                                  timeout=s.timeout)
        if s.starttls:
            connection.starttls(context=ssl.create_default_context())
        if s.user:
            connection.login(s.user, s.password)
        return connection

    def send(self, to: str, subject: str, text: str, delivery_id: str) -> None:
        message = plain_text(text)
        message["From"] = self.sender
        message["To"] = ascii_address(to)
        message["Subject"] = subject_header(subject)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = message_id(delivery_id)
        message[DELIVERY_HEADER] = delivery_id
        with self.open:
            self._send_on_one(message)

    def _send_on_one(self, message: Message) -> None:
        """On an idle connection, or a new one; kept for the next send if it still works."""
        try:
            connection = self.idle.get_nowait()
        except queue.Empty:
            connection = None
        try:
            if connection is None:
                connection = self._connect()
            connection.send_message(message)
        except smtplib.SMTPResponseException as error:
            self._discard(connection)
            raise SendFailed(f"SMTP {error.smtp_code}") from None
        except smtplib.SMTPRecipientsRefused as error:
            self._discard(connection)
            codes = sorted({code for code, _ in error.recipients.values()})
            raise SendFailed(f"SMTP recipient refused ({', '.join(map(str, codes))})") from None
        except (smtplib.SMTPException, OSError) as error:
            self._discard(connection)
            raise SendFailed(f"SMTP {type(error).__name__}") from None
        self.idle.put(connection)

    @staticmethod
    def _discard(connection: smtplib.SMTP | None) -> None:
        if connection is None:
            return
        try:
            connection.close()
        except Exception:  # a broken connection is what we are getting rid of
            pass

    def close(self) -> None:
        while not self.idle.empty():
            connection = self.idle.get_nowait()
            try:
                connection.quit()
            except Exception:  # already closed by the server
                self._discard(connection)


# -- SMS -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmsSettings:
    url: str = "http://127.0.0.1:1026/sms"
    user: str = ""
    password: str = ""
    token: str = ""
    body: str = DEFAULT_SMS_BODY
    form: bool = False
    sender: str = "OurVoice"
    timeout: float = 10.0

    @classmethod
    def from_env(cls) -> SmsSettings:
        current = settings()
        return cls(
            url=current.sms_gateway_url, user=current.sms_gateway_user,
            password=current.sms_gateway_password, token=current.sms_gateway_token,
            body=current.sms_gateway_body, form=current.sms_gateway_format == "form",
            sender=current.sms_sender, timeout=current.notifications_send_timeout,
        )


def fill(template, values: dict[str, str]):
    """The gateway's body: the JSON template with $to, $text, $sender and $reference
    replaced inside its strings. Substituting after parsing keeps any text (quotes, Khmer)
    correctly escaped."""
    if isinstance(template, str):
        return string.Template(template).safe_substitute(values)
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    return template


class Sms:
    def __init__(self, settings: SmsSettings, session: requests.Session):
        self.settings = settings
        self.session = session
        self.template = json.loads(settings.body)

    def send(self, to: str, text: str, delivery_id: str) -> None:
        s = self.settings
        body = fill(self.template, {"to": to, "text": text, "sender": s.sender,
                                    "reference": delivery_id})
        headers = {DELIVERY_HEADER: delivery_id}
        if s.token:
            headers["Authorization"] = f"Bearer {s.token}"
        auth = (s.user, s.password) if s.user else None
        try:
            if s.form:
                response = self.session.post(s.url, data=body, headers=headers, auth=auth,
                                             timeout=s.timeout)
            else:
                headers["Content-Type"] = "application/json; charset=utf-8"
                response = self.session.post(
                    s.url, data=json.dumps(body, ensure_ascii=False).encode(), headers=headers,
                    auth=auth, timeout=s.timeout)
        except requests.RequestException as error:
            raise SendFailed(f"SMS gateway {type(error).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise SendFailed(f"SMS gateway HTTP {response.status_code}")


# -- webhooks --------------------------------------------------------------------------

def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of "<timestamp>.<body>" with the webhook's secret, as hex. Signing the
    timestamp too lets a receiver refuse an old message replayed."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def webhook_body(envelope: dict) -> bytes:
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


class Webhooks:
    def __init__(self, session: requests.Session, timeout: float):
        self.session = session
        self.timeout = timeout

    def send(self, url: str, secret: str, envelope: dict, delivery_id: str) -> None:
        body = webhook_body(envelope)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            DELIVERY_HEADER: delivery_id,
            EVENT_HEADER: envelope["event_type"],
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(secret, timestamp, body),
        }
        try:
            response = self.session.post(url, data=body, headers=headers, timeout=self.timeout,
                                         allow_redirects=False)
        except (OSError, requests.RequestException) as error:
            raise SendFailed(f"webhook {type(error).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise SendFailed(f"webhook HTTP {response.status_code}")
