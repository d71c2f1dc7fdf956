"""Where a case goes and what the offices do with it. Pure domain: no I/O.

Every method that changes a case records the event that says so; deadlines are computed
here from the policy in force when the fact happened and recorded in the events, so a
replay needs no policy file and never fires a timer again."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from services.routing.deadlines import CALENDARS, Duration, Policies, Policy
from shared.categories import SENSITIVE, Category, is_sensitive
from shared.offices import office_id

MAX_TRANSFERS = 3
DEADLINES = ("acknowledge", "resolve")
OPEN = ("routed", "acknowledged", "waiting-for-citizen", "escalated")


class InvalidTransition(Exception):
    """The case's state does not allow this; the message says why (HTTP 409)."""


def choose_office(category: Category, commune: str) -> tuple[str, str]:
    """The office that delivers the category's service at the complaint's place, and why.
    Sensitive cases skip the service office and go to the ombudsman of that level."""
    district, province = commune[:4], commune[:2]
    if category.sensitive:
        if category.level == "province":
            return office_id("provincial-ombudsman", province), "sensitive"
        return office_id("district-ombudsman", district), "sensitive"
    if category.level == "commune":
        return office_id("commune", commune), "category-level"
    if category.level == "district":
        return office_id("owso", district), "category-level"
    return office_id("owsu", province), "category-level"


def ombudsman_above(current_office: str) -> str | None:
    """The escalation ladder: commune office and OWSO to the District Ombudsman of their
    district, OWSU to the Provincial/Capital Ombudsman, each ombudsman to the next level
    up; none above national. The office's own area decides, so a case transferred to
    another district is overseen there."""
    kind, _, area = current_office.rpartition("-")
    if not area.isdigit():
        return None
    return {
        "commune": office_id("district-ombudsman", area[:4]),
        "owso": office_id("district-ombudsman", area[:4]),
        "owsu": office_id("provincial-ombudsman", area[:2]),
        "district-ombudsman": office_id("provincial-ombudsman", area[:2]),
        "provincial-ombudsman": office_id("national-ombudsman"),
    }.get(kind)


def is_ombudsman(office: str) -> bool:
    return "ombudsman" in office


def deadlines_for(policy: Policy, start: datetime, which=DEADLINES) -> dict:
    """The recorded form of deadlines: due and warning instants, and the calendar."""
    return {
        name: {"due": policy.due(start, name),
               "warn": policy.warning(start, name),
               "calendar": policy.calendar.name}
        for name in which
    }


def context_of(tracking_code: str, commune: str, office: str, sensitive: bool) -> dict:
    context = {"tracking_code": tracking_code, "commune": commune, "office_id": office}
    return {**context, SENSITIVE: True} if sensitive else context


class Case(Aggregate):
    """A case as the offices handle it: its office, its deadlines, its progress."""

    class Event(Aggregate.Event):
        context: dict

    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    def trigger_event(self, event_class, **kwargs):
        # Every later event carries where the case is, for the public envelope, and
        # whether it is sensitive (its public events then carry no words).
        kwargs.setdefault("context", context_of(self.tracking_code, self.commune,
                                                self.office_id, self.sensitive))
        return super().trigger_event(event_class, **kwargs)

    # -- arrival -------------------------------------------------------------------
    @event("CaseRouted")
    def __init__(self, case_id: UUID, context: dict, office_id: str, reason: str, type: str,
                 category: str, deadlines: dict) -> None:
        self.tracking_code = context["tracking_code"]
        self.commune = context["commune"]
        self.office_id = office_id
        self.reason = reason
        self.type = type
        self.category = category
        # Cases routed before the context said so are known by their category.
        self.sensitive = bool(context.get(SENSITIVE)) or is_sensitive(category)
        self.status = "escalated" if is_ombudsman(office_id) else "routed"
        self.transfers = 0
        self.findings_recorded = False
        # The last words addressed to the citizen: a sensitive case's public events carry
        # none, so the citizen's own view asks routing for them (see words_for_citizen).
        self.question: str | None = None
        self.resolution: str | None = None
        self.findings: str | None = None
        self.recommendation: str | None = None
        self.deadlines: dict[str, dict] = {}
        self.paused: dict[str, float] = {}
        self._set_deadlines(deadlines)

    @classmethod
    def route(cls, case_id: UUID, tracking_code: str, commune: str, case_type: str,
              category: Category, received_at: datetime, policies: Policies,
              redirect=lambda office: office) -> Case:
        """`redirect` follows the directory's merges (an office merged into another)."""
        office, reason = choose_office(category, commune)
        office = redirect(office)
        policy = policies.for_case(case_type, category.code, is_ombudsman(office))
        return cls(
            case_id=case_id,
            context=context_of(tracking_code, commune, office, category.sensitive),
            office_id=office, reason=reason, type=case_type, category=category.code,
            deadlines=deadlines_for(policy, received_at),
        )

    @property
    def acknowledge_due(self) -> datetime | None:
        return self.deadlines.get("acknowledge", {}).get("due")

    @property
    def resolve_due(self) -> datetime | None:
        return self.deadlines.get("resolve", {}).get("due")

    def _set_deadlines(self, deadlines: dict) -> None:
        for name, deadline in deadlines.items():
            self.deadlines[name] = {**deadline, "warned": False}

    def _require(self, allowed: bool, message: str) -> None:
        if not allowed:
            raise InvalidTransition(message)

    def _require_open(self) -> None:
        self._require(self.status in OPEN, f"the case is {self.status}")

    # -- office work -----------------------------------------------------------------
    def acknowledge(self, by: str) -> None:
        self._require(self.status in ("routed", "escalated"),
                      f"only a new case can be acknowledged; this one is {self.status}")
        self._acknowledged(by=by)

    @event("CaseAcknowledged")
    def _acknowledged(self, by: str) -> None:
        self.status = "acknowledged"
        self.deadlines.pop("acknowledge", None)

    def request_information(self, question: str, by: str, now: datetime) -> None:
        self._require(self.status == "acknowledged",
                      "acknowledge the case before asking the citizen"
                      if self.status in ("routed", "escalated") else f"the case is {self.status}")
        # The resolve clock stops: keep how much counted time was left.
        remaining = {
            name: {"due": CALENDARS[d["calendar"]].elapsed(now, d["due"]),
                   "warn": CALENDARS[d["calendar"]].elapsed(now, d["warn"]),
                   "calendar": d["calendar"], "warned": d["warned"]}
            for name, d in self.deadlines.items()
        }
        self._information_requested(question=question, by=by, remaining=remaining)

    @event("InformationRequested")
    def _information_requested(self, question: str, by: str, remaining: dict) -> None:
        self.status = "waiting-for-citizen"
        self.question = question
        self.paused = remaining
        self.deadlines = {}

    def information_provided(self, now: datetime) -> bool:
        """The citizen answered: the clock starts again where it stopped. False when the
        case was not waiting (a message of the citizen's own changes no deadline)."""
        if self.status != "waiting-for-citizen":
            return False
        deadlines = {}
        for name, left in self.paused.items():
            calendar = CALENDARS[left["calendar"]]
            deadlines[name] = {
                "due": calendar.add(now, Duration(seconds=left["due"])),
                "warn": calendar.add(now, Duration(seconds=left["warn"])),
                "calendar": left["calendar"],
            }
        self._clock_restarted(deadlines=deadlines)
        return True

    @event("ClockRestarted")
    def _clock_restarted(self, deadlines: dict) -> None:
        self.status = "acknowledged"
        self.paused = {}
        self._set_deadlines(deadlines)

    def add_note(self, text: str, by: str) -> None:
        self._require(self.status not in ("closed", "withdrawn"), f"the case is {self.status}")
        self._note_added(text=text, by=by)

    @event("CaseNoteAdded")
    def _note_added(self, text: str, by: str) -> None:
        pass  # internal notes stay in routing's store; they are never published

    def transfer(self, to_office: str, reason: str, by: str, now: datetime,
                 policies: Policies) -> None:
        """Send a misrouted case to the right office. A case is never closed as "not our
        responsibility"; after three transfers the ombudsman takes it."""
        self._require(self.status in ("routed", "acknowledged") and not is_ombudsman(self.office_id),
                      f"only an open case at a service office can be transferred; it is {self.status}")
        self._require(to_office != self.office_id, "the case is already at that office")
        if self.transfers >= MAX_TRANSFERS:
            self.escalate("transfers", now, policies)
            return
        policy = policies.for_case(self.type, self.category, is_ombudsman(to_office))
        self._transferred(office_id=to_office, from_office_id=self.office_id, reason=reason,
                          transfers=self.transfers + 1, by=by,
                          deadlines=deadlines_for(policy, now))

    @event("CaseTransferred")
    def _transferred(self, office_id: str, from_office_id: str, reason: str, transfers: int,
                     by: str, deadlines: dict) -> None:
        self.office_id = office_id
        self.transfers = transfers
        self.status = "escalated" if is_ombudsman(office_id) else "routed"
        self.deadlines = {}
        self._set_deadlines(deadlines)

    def resolve(self, resolution: str, by: str) -> None:
        self._require(self.status == "acknowledged",
                      "acknowledge the case before resolving it"
                      if self.status in ("routed", "escalated") else f"the case is {self.status}")
        self._resolved(resolution=resolution, by=by)

    @event("CaseResolved")
    def _resolved(self, resolution: str, by: str) -> None:
        self.status = "resolved"
        self.resolution = resolution
        self.deadlines = {}

    # -- the citizen's answers -------------------------------------------------------
    def feedback(self, satisfied: bool) -> None:
        """Satisfied closes the case; an appeal arrives as its own event."""
        if satisfied and self.status == "resolved":
            self._closed(by="citizen", outcome="satisfied")

    def appeal(self, now: datetime, policies: Policies) -> None:
        self._require(self.status == "resolved", f"only a resolved case can be appealed; it is {self.status}")
        self.escalate("appeal", now, policies)

    def withdraw(self) -> None:
        if self.status not in ("closed", "withdrawn"):
            self._withdrawal_recorded()

    @event("WithdrawalRecorded")
    def _withdrawal_recorded(self) -> None:
        self.status = "withdrawn"
        self.deadlines = {}

    # -- ombudsman -------------------------------------------------------------------
    def record_findings(self, findings: str, recommendation: str, by: str) -> None:
        self._require(is_ombudsman(self.office_id) and self.status in ("escalated", "acknowledged"),
                      "findings are recorded by the ombudsman on an escalated case")
        self._findings_recorded(findings=findings, recommendation=recommendation, by=by)

    @event("OmbudsmanFindingsRecorded")
    def _findings_recorded(self, findings: str, recommendation: str, by: str) -> None:
        self.findings_recorded = True
        self.findings = findings
        self.recommendation = recommendation

    def close(self, by: str) -> None:
        self._require(self.findings_recorded and self.status in OPEN,
                      "record findings before closing" if self.status in OPEN
                      else f"the case is {self.status}")
        self._closed(by=by, outcome="findings")

    @event("CaseClosed")
    def _closed(self, by: str, outcome: str) -> None:
        self.status = "closed"
        self.deadlines = {}

    def words_for_citizen(self) -> dict | None:
        """What the office or ombudsman last said to the citizen of a sensitive case, for
        the citizen's own view; None for other cases, whose public events carry it."""
        if not self.sensitive:
            return None
        return {"question": self.question, "resolution": self.resolution,
                "findings": self.findings, "recommendation": self.recommendation}

    # -- time ------------------------------------------------------------------------
    def check_deadlines(self, now: datetime, policies: Policies) -> None:
        """Record the warnings and breaches that are due at `now`; a breach escalates."""
        for name in DEADLINES:
            deadline = self.deadlines.get(name)
            if deadline is None:
                continue
            if not deadline["warned"] and now >= deadline["warn"]:
                self._warned(deadline=name, due_at=deadline["due"])
            if now >= deadline["due"]:
                self._breached(deadline=name, due_at=deadline["due"])
                self.escalate("breach" if not is_ombudsman(self.office_id) else "ombudsman-breach",
                              now, policies)
                return

    @event("SlaWarning")
    def _warned(self, deadline: str, due_at: datetime) -> None:
        self.deadlines[deadline]["warned"] = True

    @event("SlaBreached")
    def _breached(self, deadline: str, due_at: datetime) -> None:
        self.deadlines.pop(deadline, None)

    def escalate(self, reason: str, now: datetime, policies: Policies) -> None:
        above = ombudsman_above(self.office_id)
        if above is None:
            return  # national is the last level: the breach stays on record
        policy = policies.for_case(self.type, self.category, at_ombudsman=True)
        self._escalated(office_id=above, from_office_id=self.office_id, reason=reason,
                        deadlines=deadlines_for(policy, now))

    @event("CaseEscalated")
    def _escalated(self, office_id: str, from_office_id: str, reason: str,
                   deadlines: dict) -> None:
        self.office_id = office_id
        self.status = "escalated"
        self.findings_recorded = False
        self.deadlines = {}
        self._set_deadlines(deadlines)
