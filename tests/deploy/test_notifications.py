"""Notifications delivered from the Compose stack: the settings in deploy/.env reach the
notifications container, which sends to a real SMTP server, an SMS gateway and an office
system's webhook receiver that the test runs on this machine (the containers share its
network)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.deploy.stack import FIGURES, Stack, wait_until
from tests.receivers import HttpReceiver, Mailbox, basic_auth, signed_correctly

PHONE, E164 = "012 555 014", "+85512555014"
EMAIL = "citizen14@example.org"


@pytest.fixture(scope="module")
def receivers(stack: Stack):
    """On the ports deploy/.env (test.env) gives the stack."""
    mailbox = Mailbox(port=int(stack.settings["SMTP_PORT"]))
    http = HttpReceiver(port=int(stack.settings["SMS_GATEWAY_URL"].split(":")[2].split("/")[0]))
    mailbox.start()
    http.start()
    try:
        yield mailbox, http
    finally:
        mailbox.stop()
        http.stop()


def test_the_citizen_gets_an_email_and_an_sms_and_the_office_system_its_event(stack, receivers):
    mailbox, http = receivers
    (notifications,) = stack.containers("notifications")
    # An office system of Phnom Penh's district 1201, registered as an operator does.
    added = stack.exec(notifications, "ourvoice", "webhooks", "add",
                       "--url", http.url("/webhook"), "--area", "1201")
    secret = added.splitlines()[-1]

    submitted = time.monotonic()
    response = requests.post(stack.url("intake", "/v1/cases"), timeout=30, json={
        "type": "complaint",
        "category": "water-supply",
        "description": "ទឹកស្អាតមិនហូរអស់រយៈពេលបីថ្ងៃហើយ",
        "location": {"commune": "120101"},
        "language": "km",
        "complainant": {"anonymous": False, "name": "Sok Dara", "gender": "female",
                        "phone": PHONE, "email": EMAIL},
    })
    assert response.status_code == 201, response.text
    code = response.json()["tracking_code"]

    wait_until(lambda: [m for m in mailbox.to(EMAIL) if code in m.message.get_content()], 90,
               "the citizen's email")
    texts = wait_until(lambda: [r for r in http.at("/sms")
                                if r.json()["to"] == E164 and code in r.json()["text"]], 90,
                       "the citizen's SMS")
    FIGURES["submission to the citizen's email and SMS"] = f"{time.monotonic() - submitted:.1f} s"
    assert texts[0].headers["Authorization"] == basic_auth(
        stack.settings["SMS_GATEWAY_USER"], stack.settings["SMS_GATEWAY_PASSWORD"])

    def submitted() -> list:
        return [r for r in http.at("/webhook")
                if r.json()["tracking_code"] == code and r.json()["event_type"] == "CaseSubmitted"]

    (event,) = wait_until(submitted, 90, "CaseSubmitted at the office system's webhook")
    assert signed_correctly(event, secret)
    # Nothing went wrong on the way: no delivery of the case is a dead letter.
    assert stack.query("SELECT message, channel FROM notifications_outbox"
                       " WHERE tracking_code = %s AND state = 'dead'", (code,)) == []
