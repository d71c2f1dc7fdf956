"""The other ends of the channels, for the notifications tests and the benchmarks: a real SMTP
server (aiosmtpd) and a small HTTP server that plays the SMS gateway and the office systems'
webhook receivers. Both listen on 127.0.0.1 only and keep everything they received."""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.system import free_port


@dataclass
class Mail:
    recipients: list[str]
    raw: bytes
    message: email.message.EmailMessage
    at: float = field(default_factory=time.monotonic)

    @property
    def delivery(self) -> str:
        return self.message["X-OurVoice-Delivery"]


class Mailbox:
    """An SMTP server that keeps every message. `refuse` answers 451 (try later) to all;
    `delay` slows each message down, to catch a sender in the middle of a batch."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.mails: list[Mail] = []
        self.refuse = False
        self.delay = 0.0
        self.lock = threading.Lock()
        # A server name of its own: aiosmtpd would otherwise ask DNS for one per session.
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     server_hostname="mailbox.test")

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "451 4.3.0 try again later"
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=policy.default)
        with self.lock:
            self.mails.append(Mail(list(envelope.rcpt_tos), raw, message))
        return "250 OK"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails if address in m.recipients]

    def deliveries(self) -> list[str]:
        with self.lock:
            return [m.delivery for m in self.mails]


@dataclass
class Request:
    path: str
    headers: dict
    body: bytes
    status: int = 200
    at: float = field(default_factory=time.monotonic)

    def json(self):
        return json.loads(self.body)


class HttpReceiver:
    """Keeps every POST. `status[path]` sets the answer for a path (default 200);
    `hang[path]` makes it wait that many seconds before answering."""

    def __init__(self, port: int | None = None):
        self.requests: list[Request] = []
        self.status: dict[str, int] = {}
        self.hang: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real gateways and receivers do

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away in the middle of its request (killed): like a
                    # real gateway, take nothing; the sender tries the delivery again.
                    self.close_connection = True
                    return
                path = self.path
                if receiver.hang.get(path):
                    time.sleep(receiver.hang[path])
                status = receiver.status.get(path, 200)
                with receiver.lock:
                    receiver.requests.append(Request(path, dict(self.headers.items()), body,
                                                     status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many senders connect at once
            daemon_threads = True

        self.server = Server(("127.0.0.1", port or free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def at(self, path: str, accepted_only: bool = True) -> list[Request]:
        """What reached a path: what it accepted, or every try."""
        with self.lock:
            return [r for r in self.requests if r.path == path
                    and (not accepted_only or 200 <= r.status < 300)]


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def signed_correctly(request: Request, secret: str) -> bool:
    """What an office system checks: HMAC-SHA256 of "<timestamp>.<body>"."""
    timestamp = request.headers["X-OurVoice-Timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + request.body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers["X-OurVoice-Signature"])
