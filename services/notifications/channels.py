"""The channels a message leaves by: email over SMTP, SMS through an HTTP gateway, and
webhooks to office systems. Each send either returns (the receiver accepted it) or
raises `SendFailed` with a description that names no person: errors are recorded in
events and logs, where contact data must never appear."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import smtplib
import socket
import ssl
import string
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import requests

DELIVERY_HEADER = "X-OurVoice-Delivery"
EVENT_HEADER = "X-OurVoice-Event"
TIMESTAMP_HEADER = "X-OurVoice-Timestamp"
SIGNATURE_HEADER = "X-OurVoice-Signature"
MESSAGE_ID_DOMAIN = "notifications.ourvoice"


def setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


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
        return cls(
            host=setting("SMTP_HOST", cls.host), port=int(setting("SMTP_PORT", str(cls.port))),
            sender=setting("SMTP_FROM", cls.sender), user=setting("SMTP_USER", ""),
            password=setting("SMTP_PASSWORD", ""),
            starttls=setting("SMTP_STARTTLS", "no").lower() in ("yes", "true", "1"),
            timeout=float(setting("NOTIFICATIONS_SEND_TIMEOUT", str(cls.timeout))),
            connections=int(setting("SMTP_CONNECTIONS", str(cls.connections))),
            helo=setting("SMTP_HELO_NAME", socket.gethostname()),
        )


class Email:
    """SMTP with a few connections kept open: opening one per message would cost more
    than the message."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.idle: queue.LifoQueue[smtplib.SMTP] = queue.LifoQueue()

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
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = message_id(delivery_id)
        message[DELIVERY_HEADER] = delivery_id
        message.set_content(text, charset="utf-8")
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
        if self.idle.qsize() < self.settings.connections:
            self.idle.put(connection)
        else:
            self._discard(connection)

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

DEFAULT_SMS_BODY = '{"to": "$to", "text": "$text", "sender": "$sender", "reference": "$reference"}'


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
        return cls(
            url=setting("SMS_GATEWAY_URL", cls.url), user=setting("SMS_GATEWAY_USER", ""),
            password=setting("SMS_GATEWAY_PASSWORD", ""), token=setting("SMS_GATEWAY_TOKEN", ""),
            body=setting("SMS_GATEWAY_BODY", cls.body),
            form=setting("SMS_GATEWAY_FORMAT", "json").lower() == "form",
            sender=setting("SMS_SENDER", cls.sender),
            timeout=float(setting("NOTIFICATIONS_SEND_TIMEOUT", str(cls.timeout))),
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
