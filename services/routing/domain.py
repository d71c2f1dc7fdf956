"""Where a case goes and what the offices do with it. Pure domain: no I/O.

Every method that changes a case records the event that says so; deadlines are computed
here from the policy in force when the fact happened and recorded in the events, so a
replay needs no policy file and never fires a timer again."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.routing.deadlines import CALENDARS, Duration, Policies, Policy
from shared.aggregate import Aggregate, event, id_from
from shared.categories import SENSITIVE, Category, is_sensitive
from shared.events import DEADLINES
from shared.offices import is_ombudsman, office_id, ombudsman_above
from shared.principals import someone

MAX_TRANSFERS = 3
# An evaluation is feedback on a service, not a complaint: it has no deadlines and is
# never escalated by a breach; the office may answer it (resolve, with its reply).
EVALUATION = "evaluation"
OPEN = ("routed", "acknowledged", "waiting-for-citizen", "escalated")
# Who may take each action on a case of their office (the endpoints allow the same).
ACTIONS = {
    "acknowledge": ("staff", "ombudsman"),
    "request-info": ("staff", "ombudsman"),
    "note": ("staff", "ombudsman"),
    "assign": ("staff", "ombudsman"),
    "transfer": ("staff",),
    "escalate": ("staff",),
    "resolve": ("staff", "ombudsman"),
    "findings": ("ombudsman",),
    "close": ("ombudsman",),
}


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


def above_excluded(office: str, excluded: str | None) -> str | None:
    """The office above `office` on the escalation ladder, passing over `excluded`, the
    office a case is about (an ombudsman recording a case against itself)."""
    above = ombudsman_above(office)
    if above is not None and above == excluded:
        above = ombudsman_above(above)
    return above


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
        def apply(self, aggregate: Case) -> None:
            # After the event's own method: the dated record of what happened, for the
            # case file (the event's instant is known here, not in the method).
            aggregate._remember(self)

    create_id = id_from("case_id")

    def event_context(self) -> dict:
        # Every later event carries where the case is, for the public envelope, and
        # whether it is sensitive (its public events then carry no words).
        return context_of(self.tracking_code, self.commune, self.office_id, self.sensitive)

    # -- arrival -------------------------------------------------------------------
    @event("CaseRouted")
    def __init__(self, case_id: UUID, context: dict, office_id: str, reason: str, type: str,
                 category: str, deadlines: dict, language: str | None = None,
                 excluded_office: str | None = None) -> None:
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
        self.outcomes: dict[str, dict] = {}  # deadline -> {"state": met|breached, "due_at"}
        self._set_deadlines(deadlines)
        # The citizen's language; None for cases routed before routing kept it.
        self.language = language
        # The office the case is about, which recorded it at its desk: it never has the
        # case (None for every other case, and for cases routed before the desk).
        self.excluded_office = excluded_office
        self.assignee: str | None = None
        # What the case file shows, each with who and when (see _remember).
        self.questions: list[dict] = []
        self.notes: list[dict] = []
        self.transfer_log: list[dict] = []
        self.escalations: list[dict] = []
        self.resolved: dict | None = None
        self.findings_record: dict | None = None
        self.history: list[dict] = []

    @classmethod
    def route(cls, case_id: UUID, tracking_code: str, commune: str, case_type: str,
              category: Category, received_at: datetime, policies: Policies,
              redirect=lambda office: office, language: str | None = None,
              excluded_office: str | None = None) -> Case:
        """`redirect` follows the directory's merges (an office merged into another).
        `excluded_office` is the office a case recorded at its own desk is about: the
        case goes to the office above it instead, and never comes back to it."""
        office, reason = choose_office(category, commune)
        office = redirect(office)
        if excluded_office is not None and office == excluded_office:
            office, reason = above_excluded(office, excluded_office), "about-recording-office"
        policy = policies.for_case(case_type, category.code, is_ombudsman(office))
        return cls(
            case_id=case_id,
            context=context_of(tracking_code, commune, office, category.sensitive),
            office_id=office, reason=reason, type=case_type, category=category.code,
            deadlines=deadlines_for(policy, received_at) if case_type != EVALUATION else {},
            language=language, excluded_office=excluded_office,
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
            self.outcomes.pop(name, None)

    def _met(self, name: str) -> None:
        if name in self.deadlines:
            self.outcomes[name] = {"state": "met", "due_at": self.deadlines[name]["due"]}

    def deadline_states(self) -> list[dict]:
        """Each deadline of the case at its current office: running (with its due
        instant), paused while the citizen is asked, met or breached."""
        states = []
        for name in DEADLINES:
            if name in self.deadlines:
                states.append({"name": name, "state": "running",
                               "due_at": self.deadlines[name]["due"]})
            elif name in self.paused:
                states.append({"name": name, "state": "paused", "due_at": None})
            elif name in self.outcomes:
                states.append({"name": name, **self.outcomes[name]})
        return states

    def _require(self, allowed: bool, message: str) -> None:
        if not allowed:
            raise InvalidTransition(message)

    def refusal(self, action: str) -> str | None:
        """Why the case's state forbids an action now, or None when it allows it."""
        new, acknowledged = self.status in ("routed", "escalated"), self.status == "acknowledged"
        waiting = "acknowledge the case before {}" if new else f"the case is {self.status}"
        if action == "acknowledge" and not new:
            return f"only a new case can be acknowledged; this one is {self.status}"
        if action == "request-info" and not acknowledged:
            return waiting.format("asking the citizen")
        if action == "resolve" and not (acknowledged or self.type == EVALUATION and new):
            return waiting.format("resolving it")
        if action == "note" and self.status in ("closed", "withdrawn"):
            return f"the case is {self.status}"
        if action == "assign" and self.status not in OPEN:
            return f"the case is {self.status}"
        if action in ("transfer", "escalate") and (self.status not in ("routed", "acknowledged")
                                                   or is_ombudsman(self.office_id)):
            done = {"transfer": "transferred", "escalate": "escalated"}[action]
            return f"only an open case at a service office can be {done}; it is {self.status}"
        if action == "transfer" and self.transfers >= MAX_TRANSFERS:
            return (f"this case has been transferred {self.transfers} times, the most allowed; "
                    "escalate it to the ombudsman instead")
        if action == "escalate" and self.type == EVALUATION:
            return "an evaluation is feedback on a service: answer it rather than escalate it"
        if action == "findings" and not (is_ombudsman(self.office_id)
                                         and self.status in ("escalated", "acknowledged")):
            return "findings are recorded by the ombudsman on an escalated case"
        if action == "close" and not (self.findings_recorded and self.status in OPEN):
            return "record findings before closing" if self.status in OPEN \
                else f"the case is {self.status}"
        return None

    def _require_action(self, action: str) -> None:
        refusal = self.refusal(action)
        if refusal is not None:
            raise InvalidTransition(refusal)

    def possible_actions(self, role: str) -> list[str]:
        """What a reader of this role, at the case's office, may do now."""
        return [action for action, roles in ACTIONS.items()
                if role in roles and self.refusal(action) is None]

    # -- office work -----------------------------------------------------------------
    def acknowledge(self, by: str) -> None:
        self._require_action("acknowledge")
        # The deadlines left once acknowledged (the resolve one), for the public event:
        # the citizen's view keeps the same deadlines as routing.
        self._acknowledged(by=by, deadlines={name: {k: v for k, v in d.items() if k != "warned"}
                                             for name, d in self.deadlines.items()
                                             if name != "acknowledge"})

    @event("CaseAcknowledged")
    def _acknowledged(self, by: str, deadlines: dict | None = None) -> None:
        self.status = "acknowledged"
        self._met("acknowledge")
        self.deadlines.pop("acknowledge", None)

    def request_information(self, question: str, by: str, now: datetime) -> None:
        self._require_action("request-info")
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
        self._require_action("note")
        self._note_added(text=text, by=by)

    @event("CaseNoteAdded")
    def _note_added(self, text: str, by: str) -> None:
        pass  # internal notes stay in routing's store; they are never published

    def assign(self, staff_id: str, by: str) -> None:
        """Who at the office works the case. The caller checks that the assignee is an
        active account of the office; here only the case's state counts."""
        self._require_action("assign")
        self._assigned(staff_id=staff_id, by=by)

    @event("CaseAssigned")
    def _assigned(self, staff_id: str, by: str) -> None:
        # Internal: names of staff never travel on the bus.
        self.assignee = staff_id

    def open_file(self, by: str, role: str, office_id: str | None) -> None:
        """Someone read the case file: every reading is on record, and the citizen and
        auditors see it (the public event names the role and office, never the reader)."""
        self._file_opened(by=by, role=role, office_id=office_id)

    @event("CaseFileOpened")
    def _file_opened(self, by: str, role: str, office_id: str | None) -> None:
        pass  # the reader's office, not the case's: the case stays where it is

    def transfer(self, to_office: str, reason: str, by: str, now: datetime,
                 policies: Policies) -> None:
        """Send a misrouted case to the right service office. A case is never closed as
        "not our responsibility". At most three transfers: after that, or to reach an
        ombudsman, the office escalates the case (escalate), with its reason.

        The new office has its own time to acknowledge, but the resolve deadline stays
        the one counted from submission (moved on only by pauses for the citizen): an
        office about to miss it cannot buy time by passing the case on."""
        self._require_action("transfer")
        self._require(not is_ombudsman(to_office), "an ombudsman takes a case by escalation, "
                                                  "not by transfer: use escalate")
        self._require(to_office != self.office_id, "the case is already at that office")
        self._require(to_office != self.excluded_office,
                      "this case is about that office's own conduct, recorded at its desk: "
                      "it is never handled there")
        deadlines = {}
        if self.type != EVALUATION:
            policy = policies.for_case(self.type, self.category, at_ombudsman=False)
            deadlines = deadlines_for(policy, now, which=("acknowledge",))
            resolve = self.deadlines.get("resolve")
            if resolve is not None:
                deadlines["resolve"] = dict(resolve)
                acknowledge = deadlines["acknowledge"]
                if acknowledge["due"] > resolve["due"]:
                    deadlines["acknowledge"] = {**acknowledge, "due": resolve["due"],
                                                "warn": min(acknowledge["warn"], resolve["due"])}
        self._transferred(office_id=to_office, from_office_id=self.office_id, reason=reason,
                          transfers=self.transfers + 1, by=by, deadlines=deadlines)

    @event("CaseTransferred")
    def _transferred(self, office_id: str, from_office_id: str, reason: str, transfers: int,
                     by: str, deadlines: dict) -> None:
        self.office_id = office_id
        self.transfers = transfers
        self.status = "escalated" if is_ombudsman(office_id) else "routed"
        self.assignee = None  # the new office decides who works it
        self.outcomes = {}
        self.deadlines = {}
        self._set_deadlines(deadlines)
        # A resolve deadline carried over keeps its warning: it was not moved.
        for name, deadline in deadlines.items():
            self.deadlines[name]["warned"] = bool(deadline.get("warned"))

    def resolve(self, resolution: str, by: str) -> None:
        self._require_action("resolve")
        self._resolved(resolution=resolution, by=by)

    @event("CaseResolved")
    def _resolved(self, resolution: str, by: str) -> None:
        self.status = "resolved"
        self.resolution = resolution
        self._met("resolve")
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
        self._require_action("findings")
        self._findings_recorded(findings=findings, recommendation=recommendation, by=by)

    @event("OmbudsmanFindingsRecorded")
    def _findings_recorded(self, findings: str, recommendation: str, by: str) -> None:
        self.findings_recorded = True
        self.findings = findings
        self.recommendation = recommendation

    def close(self, by: str) -> None:
        self._require_action("close")
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

    # -- the record the case file shows -----------------------------------------------
    def _remember(self, event) -> None:
        """The dated record of an event: its entry in the timeline, and the words, who
        wrote them and when. A timeline summary never quotes anyone's words, so it can be
        shown whatever the case."""
        kind, at = type(event).__name__, event.timestamp
        by = getattr(event, "by", None)
        summary = SUMMARIES.get(kind)
        self.history.append({"event_type": kind, "at": at, "by": by,
                             "summary": summary(event) if summary else kind})
        keep = RECORDS.get(kind)
        if keep is not None:
            keep(self, event, {"by": by, "at": at})

    # -- time ------------------------------------------------------------------------
    def check_deadlines(self, now: datetime, policies: Policies) -> None:
        """Record the warnings and breaches that are due at `now`; a breach escalates.
        An evaluation has none; one routed before that rule keeps the deadlines it was
        given (recorded in its events) as far as the ombudsman, who sets it none."""
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
        self.outcomes[deadline] = {"state": "breached", "due_at": due_at}
        self.deadlines.pop(deadline, None)

    def escalate_by_office(self, explanation: str, by: str, now: datetime,
                           policies: Policies) -> None:
        """The office hands the case to the ombudsman above it, saying why (a case it
        cannot settle, or one transferred as often as allowed)."""
        self._require_action("escalate")
        self.escalate("office", now, policies, explanation=explanation, by=by)

    def escalate(self, reason: str, now: datetime, policies: Policies,
                 explanation: str | None = None, by: str | None = None) -> None:
        above = above_excluded(self.office_id, self.excluded_office)
        if above is None:
            return  # national is the last level: the breach stays on record
        policy = policies.for_case(self.type, self.category, at_ombudsman=True)
        self._escalated(office_id=above, from_office_id=self.office_id, reason=reason,
                        deadlines=deadlines_for(policy, now) if self.type != EVALUATION else {},
                        explanation=explanation, by=by)

    @event("CaseEscalated")
    def _escalated(self, office_id: str, from_office_id: str, reason: str,
                   deadlines: dict, explanation: str | None = None,
                   by: str | None = None) -> None:
        self.office_id = office_id
        self.status = "escalated"
        self.findings_recorded = False
        self.assignee = None
        self.outcomes = {}
        self.deadlines = {}
        self._set_deadlines(deadlines)


# -- the case file's record of each event ---------------------------------------------
# What the timeline says of each kind of event: never anyone's words.
SUMMARIES = {
    "CaseRouted": lambda e: f"routed to {getattr(e, 'office_id', '')}",
    "CaseAcknowledged": lambda e: "acknowledged",
    "InformationRequested": lambda e: "asked the citizen for information",
    "ClockRestarted": lambda e: "the citizen answered; the deadline runs again",
    "CaseNoteAdded": lambda e: "internal note",
    "CaseAssigned": lambda e: f"assigned to {getattr(e, 'staff_id', '')}",
    "CaseFileOpened": lambda e: f"case file opened by {someone(getattr(e, 'role', ''))}"
                                + (f" of {e.office_id}" if getattr(e, "office_id", None) else ""),
    "CaseTransferred": lambda e: f"transferred to {getattr(e, 'office_id', '')}",
    "CaseResolved": lambda e: "resolved",
    "WithdrawalRecorded": lambda e: "withdrawn by the citizen",
    "OmbudsmanFindingsRecorded": lambda e: "findings recorded",
    "CaseClosed": lambda e: f"closed ({getattr(e, 'outcome', '')})",
    "SlaWarning": lambda e: f"{getattr(e, 'deadline', '')} deadline near",
    "SlaBreached": lambda e: f"{getattr(e, 'deadline', '')} deadline missed",
    "CaseEscalated": lambda e: f"escalated to {getattr(e, 'office_id', '')} "
                               f"({getattr(e, 'reason', '')})",
}


def _question(case: Case, event, said: dict) -> None:
    case.questions.append({"text": event.question, **said})


def _note(case: Case, event, said: dict) -> None:
    case.notes.append({"text": event.text, **said})


def _transfer(case: Case, event, said: dict) -> None:
    case.transfer_log.append({"from_office_id": event.from_office_id,
                              "office_id": event.office_id, "reason": event.reason, **said})


def _escalation(case: Case, event, said: dict) -> None:
    case.escalations.append({"from_office_id": event.from_office_id,
                             "office_id": event.office_id, "reason": event.reason,
                             "explanation": getattr(event, "explanation", None), **said})


def _resolution(case: Case, event, said: dict) -> None:
    case.resolved = {"text": event.resolution, **said}


def _findings(case: Case, event, said: dict) -> None:
    case.findings_record = {"findings": event.findings,
                            "recommendation": event.recommendation, **said}


# The words, who said them and when, that the case file shows of these events.
RECORDS = {
    "InformationRequested": _question,
    "CaseNoteAdded": _note,
    "CaseTransferred": _transfer,
    "CaseEscalated": _escalation,
    "CaseResolved": _resolution,
    "OmbudsmanFindingsRecorded": _findings,
}
