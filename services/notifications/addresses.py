"""Who a delivery goes to, asked at send time: the citizen's contact from intake, the
offices' from routing's directory. Addresses are kept only in memory, never recorded."""

from __future__ import annotations

import time
from typing import Any

import eventlet

from services.notifications.domain import CITIZEN, WEBHOOK, Delivery
from shared.offices import ombudsman_above


class LookupFailed(Exception):
    """An address could not be looked up now (the service that knows it did not answer)."""


class Addresses:
    """Who to reach, asked at send time and kept only in memory: the citizen's contact
    from intake (None unless they consented, are not anonymous and were not erased) and
    the office's from routing's directory (kept a few seconds: many notices go to one
    office)."""

    OFFICE_SECONDS = 5.0

    def __init__(self, intake, routing, timeout: float, offices: dict):
        self.intake = intake
        self.routing = routing
        self.timeout = timeout
        self.offices = offices  # shared between passes: office id -> (expires, contact)
        self.citizens: dict[str, Any] = {}

    def prefetch(self, deliveries: list[Delivery]) -> None:
        """Ask for every address of a batch at once rather than one round trip each: the
        citizens' in one request to intake, the offices' not known yet each at the same
        time."""
        now = time.monotonic()
        pending = {}
        citizens = []
        for delivery in deliveries:
            if delivery.channel == WEBHOOK:
                continue
            if delivery.recipient == CITIZEN:
                case_id = delivery.case["case_id"]
                if case_id not in self.citizens and case_id not in citizens:
                    citizens.append(case_id)
            else:
                self._ask_office(delivery.recipient, pending, now)
            for office in named_offices(delivery):
                self._ask_office(office, pending, now)
        if citizens:
            pending[("c", None)] = self._ask(self.intake.contacts_for, citizens)
        deadline = now + self.timeout
        for (kind, key), reply in pending.items():
            try:
                if isinstance(reply, Exception):
                    raise reply
                with eventlet.Timeout(max(0.01, deadline - time.monotonic())):
                    contact = reply.result()
            except (Exception, eventlet.Timeout) as error:
                contact = LookupFailed(f"{'intake' if kind == 'c' else 'routing'} did not answer"
                                       f" ({type(error).__name__})")
            if kind == "c":
                for case_id in citizens:
                    self.citizens[case_id] = contact if isinstance(contact, LookupFailed) \
                        else contact.get(case_id)
            elif not isinstance(contact, LookupFailed):
                self.offices[key] = (time.monotonic() + self.OFFICE_SECONDS, contact)
            else:
                self.offices[key] = (0.0, contact)

    def _ask_office(self, office_id: str, pending: dict, now: float) -> None:
        cached = self.offices.get(office_id)
        if (cached is None or cached[0] < now) and ("o", office_id) not in pending:
            pending[("o", office_id)] = self._ask(self.routing.office_contact, office_id)

    def names(self, office_id: str) -> tuple[str, str] | None:
        """An office's names as the directory has them (operators may have amended
        them), when routing told us; else the message names it from its id's area."""
        contact = self.offices.get(office_id, (0, None))[1]
        if not isinstance(contact, dict):
            return None
        return contact["name_en"], contact["name_km"]

    @staticmethod
    def _ask(method, argument):
        try:
            return method.call_async(argument)
        except Exception as error:  # the broker refused: the service is unknown or down
            return error

    def of(self, delivery: Delivery) -> dict | None:
        found = (self.citizens.get(delivery.case["case_id"]) if delivery.recipient == CITIZEN
                 else self.offices.get(delivery.recipient, (0, None))[1])
        if isinstance(found, LookupFailed):
            raise found
        return found


def named_offices(delivery: Delivery) -> set[str]:
    """The offices a message names besides its recipient: where the case is or goes,
    where it came from, and the ombudsman above (where a missed deadline sends it)."""
    if delivery.channel == WEBHOOK:
        return set()
    at = delivery.details.get("office_id") or delivery.case.get("office_id")
    named = {at, delivery.details.get("from_office_id"), ombudsman_above(at) if at else None}
    return {office for office in named if office}
