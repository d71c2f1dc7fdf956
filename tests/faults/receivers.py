"""The far ends of the channels during the fault suite: the notification tests' real SMTP
server and SMS gateway, on 127.0.0.1, counting what reached them by delivery."""

from __future__ import annotations

from collections import Counter

from tests.receivers import HttpReceiver, Mailbox


class Receivers:
    def __init__(self):
        self.mailbox = Mailbox()
        self.gateway = HttpReceiver()

    @property
    def env(self) -> dict[str, str]:
        """What the system is configured with to reach them."""
        return {"SMTP_PORT": str(self.mailbox.port), "SMS_GATEWAY_URL": self.gateway.url("/sms")}

    def start(self) -> None:
        self.mailbox.start()
        self.gateway.start()

    def stop(self) -> None:
        self.mailbox.stop()
        self.gateway.stop()

    def deliveries(self) -> Counter:
        """How many times each delivery was accepted: an email by its delivery header, an
        SMS by the reference the gateway is given. Every try of a delivery carries the
        same id, so a delivery accepted twice shows here as 2."""
        accepted = Counter(self.mailbox.deliveries())
        accepted.update(request.json()["reference"] for request in self.gateway.at("/sms"))
        return accepted

    def deliveries_to(self) -> Counter:
        """How many deliveries reached each email address and phone number (a copy of one
        counts once)."""
        with self.mailbox.lock:
            reached = {(address, mail.delivery) for mail in self.mailbox.mails
                       for address in mail.recipients}
        reached |= {(r.json()["to"], r.json()["reference"]) for r in self.gateway.at("/sms")}
        return Counter(address for address, _ in reached)

    def totals(self) -> tuple[int, int]:
        """How many emails and SMS were accepted in all."""
        return len(self.mailbox.deliveries()), len(self.gateway.at("/sms"))
