"""The cases the fault suite submits and what became of them: submitted as the app does
on a flaky network, then counted in every place they should be, once. Each test of the
suite makes its own trouble and then asks the same questions here."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import requests

from services.routing.domain import choose_office
from shared.categories import categories
from tests.faults.citizens import complainant, gives_contact
from tests.faults.receivers import Receivers
from tests.system import ROOT, System, complaint, wait_until

COMMUNES = ["120101", "120109", "010201", "170101", "020101", "171001"]
CATEGORIES = ["water-supply", "construction-permits", "civil-registration", "land"]
SETTINGS = {
    "OURVOICE_SUBMISSIONS_PER_MINUTE": "1000000",
    # A try that failed while a service was down comes back within seconds, not minutes.
    "NOTIFICATIONS_RETRY_BASE_SECONDS": "1",
}


def ourvoice(system: System, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), *args], env=system.env,
                          capture_output=True, text=True, timeout=300)


def give_offices_contacts(system: System, directory: Path) -> None:
    """An email and a phone in the directory for every office the cases go to, so that
    every notice to an office is sent too (one without an address is never due)."""
    offices = sorted({choose_office(categories()[category], commune)[0]
                      for commune in COMMUNES for category in CATEGORIES})
    directory.write_text("office_id,email,phone\n" + "".join(
        f"{office},{office}@offices.example.org,023 900 {number:03d}\n"
        for number, office in enumerate(offices)), encoding="utf-8")
    done = ourvoice(system, "directory", "import", str(directory))
    assert done.returncode == 0, done.stderr


def submit_until_accepted(system: System, number: int, url: str | None = None) -> str:
    """What the app does on a flaky network: the same Idempotency-Key until a 201."""
    body = complaint(location={"commune": COMMUNES[number % len(COMMUNES)]},
                     category=CATEGORIES[number % len(CATEGORIES)],
                     description=f"chaos case {number}", complainant=complainant(number))
    key = str(uuid.uuid4())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            response = requests.post((url or system.urls["intake"]) + "/v1/cases", json=body,
                                     timeout=10, headers={"Idempotency-Key": key})
            if response.status_code == 201:
                return response.json()["tracking_code"]
            assert response.status_code in (429, 500, 502, 503), response.text
        except requests.RequestException:
            pass  # intake is being killed or restarted
        time.sleep(0.2)
    raise AssertionError(f"case {number} was never accepted")


def notices_recorded(system: System) -> bool:
    """Notifications has read every event of intake and routing that reporting has, and
    with each the notices it calls for (they are recorded in the same transaction)."""
    return system.settled() and system.scalar(
        "SELECT (SELECT count(*) FROM notifications_tracking WHERE application_name <> %(own)s)"
        " = (SELECT count(*) FROM reporting_tracking WHERE application_name <> %(own)s)",
        {"own": "notifications"})


def deliveries_finished(system: System) -> bool:
    """Every notice due is sent, skipped or given up, as far as the outbox shows."""
    return system.scalar(
        "SELECT (SELECT count(*) FROM notifications_events WHERE topic LIKE %(due)s)"
        " = (SELECT count(*) FROM notifications_outbox WHERE state IN ('sent', 'skipped', 'dead'))",
        {"due": "%NotificationDue"})


def wait_until_settled(system: System, cases: int) -> None:
    """Every case in a queue, every notice recorded and sent, every event reported."""
    wait_until(lambda: system.scalar("SELECT count(*) FROM routing_office_queue") >= cases,
               timeout=300, interval=1, what="every case in a queue")
    wait_until(lambda: notices_recorded(system), timeout=300, interval=1,
               what="every notice recorded")
    wait_until(lambda: deliveries_finished(system), timeout=600, interval=1,
               what="every notice sent")
    wait_until(system.settled, timeout=300, interval=1, what="every event reported")


@dataclass
class Notices:
    """What became of every notice due, in notifications' store and at the receivers."""

    due: set[str]  # deliveries with a NotificationDue
    sent: Counter  # NotificationSent per delivery
    tries: Counter  # DeliveryAttempted per delivery
    received: Counter  # accepted by the SMTP server or the SMS gateway, per delivery

    @property
    def never_sent(self) -> set[str]:
        return self.due - set(self.sent)

    @property
    def doubled(self) -> set[str]:
        """Sent twice in the store, sent without being due, or accepted by a receiver
        more often than it was tried."""
        return {d for d, times in self.sent.items() if times > 1 or d not in self.due} \
            | {d for d, times in self.received.items() if times > self.tries[d]}

    @property
    def never_received(self) -> set[str]:
        return set(self.sent) - set(self.received)

    @property
    def copies(self) -> int:
        """Messages a receiver accepted again on a later try of the same delivery, with the
        same id: the try before was in doubt (its sender exited between the receiver's
        answer and recording it, so the delivery was sent again once the try's lease ran
        out) or failed after the receiver had the message. Retries after a failure, not
        doubled effects: a receiver can drop a copy by its id."""
        return sum(times - 1 for times in self.received.values() if times > 1)


def notices(system: System, receivers: Receivers) -> Notices:
    rows = system.query(
        "SELECT originator_id::text AS delivery, count(*) FILTER (WHERE topic LIKE %s) AS due, "
        "count(*) FILTER (WHERE topic LIKE %s) AS sent, "
        "count(*) FILTER (WHERE topic LIKE %s) AS tries FROM notifications_events "
        "GROUP BY originator_id", ("%NotificationDue", "%NotificationSent", "%DeliveryAttempted"))
    return Notices(due={r["delivery"] for r in rows if r["due"]},
                   sent=Counter({r["delivery"]: r["sent"] for r in rows if r["sent"]}),
                   tries=Counter({r["delivery"]: r["tries"] for r in rows}),
                   received=receivers.deliveries())


@dataclass
class Outcome:
    """What became of the accepted cases, once everything settled."""

    cases: int
    lost: set[str]  # accepted, in no office queue
    doubled: int  # queued, submitted or routed twice, or a notice doubled
    told: Notices
    citizens: list[dict]  # those who gave a contact
    misheard: list[str]  # citizens not told once of each, by email and by SMS
    submitted: int  # CaseSubmitted in intake's store
    reported: int  # cases in reporting's summary

    def assert_nothing_lost_or_doubled(self, accepted: list[str]) -> None:
        told = self.told
        assert len(set(accepted)) == self.cases
        assert not self.lost, f"lost: {sorted(self.lost)[:20]}"
        assert self.doubled == 0
        assert self.submitted == self.cases
        assert self.reported == self.cases
        # Per case its office hears of it by email and SMS; a citizen who gave a contact
        # hears on both that it was received, then that it was routed.
        assert len(told.due) == 2 * self.cases + 4 * len(self.citizens)
        assert not told.never_sent, f"never sent: {sorted(told.never_sent)[:20]}"
        assert not told.never_received, f"never received: {sorted(told.never_received)[:20]}"
        assert set(told.received) <= set(told.sent), "received, never recorded as sent"
        assert not self.misheard, f"not told once of each by email and SMS: {self.misheard[:20]}"


def outcome(system: System, receivers: Receivers, accepted: list[str]) -> Outcome:
    """Cases 0 to len(accepted) - 1, counted everywhere they should be."""
    cases = len(accepted)
    queued = [r["tracking_code"] for r in system.query(
        "SELECT tracking_code FROM routing_office_queue")]
    routed_twice = system.query(
        "SELECT originator_id FROM routing_events WHERE topic LIKE %s "
        "GROUP BY originator_id HAVING count(*) > 1", ("%CaseRouted",))
    submitted_twice = system.query(
        "SELECT originator_id FROM intake_events WHERE topic LIKE %s "
        "GROUP BY originator_id HAVING count(*) > 1", ("%CaseSubmitted",))
    told = notices(system, receivers)
    reported = requests.get(system.url("reporting", "/v1/reports/summary"),
                            headers={"Authorization": f"Bearer {system.principal('auditor')}"},
                            timeout=30).json()
    citizens = [complainant(n) for n in range(cases) if gives_contact(n)]
    reached = receivers.deliveries_to()
    # Each is told on each channel that their case was received, then that it was routed.
    misheard = [c["name"] for c in citizens if (reached[c["email"]], reached[c["phone"]]) != (2, 2)]
    return Outcome(
        cases=cases, lost=set(accepted) - set(queued),
        doubled=len(queued) - len(set(queued)) + len(routed_twice) + len(submitted_twice)
        + len(told.doubled),
        told=told, citizens=citizens, misheard=misheard,
        submitted=system.scalar("SELECT count(*) FROM intake_events WHERE topic LIKE %s",
                                ("%CaseSubmitted",)),
        reported=reported["total"])
