"""Routing's use cases: what happens to a case when intake says something of it, when an
office acts on it, when someone reads its file and when its deadlines fall due. Each
loads the case, lets the domain decide, and records what it decided; the read models a
use case needs (the directory, the cases now due) are given to it.

No SQL, no nameko: the service's entrypoints (service.py and its mixins) parse,
authorise and answer; these methods run on any eventsourcing persistence, the in-memory
one of the unit tests included."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, Protocol
from uuid import UUID

import yaml
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Tracking

from services.routing.deadlines import Policies, policies_from
from services.routing.domain import ACTIONS, Case, InvalidTransition
from shared import metrics
from shared.categories import category_of
from shared.settings import settings
from shared.store import CaseStore

# How often a command or a reading is tried again when the case changed meanwhile.
OPEN_ATTEMPTS = 20


@cache
def policies() -> Policies:
    """The SLA policies in force, from the file operators edit."""
    path = settings().sla_policies
    return policies_from(yaml.safe_load(path.read_text(encoding="utf-8")))


class Actor(Protocol):
    """Who acts or reads (shared.access.Principal): their name, role and office."""

    id: str
    role: str
    office_id: str | None

    def works_at(self, office_id: str) -> bool: ...


class UnknownCase(LookupError):
    """No case has this id (HTTP 404)."""


class NotAllowed(PermissionError):
    """This actor may not do this to this case; the message says who may (HTTP 403)."""


class Collided(RuntimeError):
    """The case kept changing under the command; the message says what to do (HTTP 409)."""


class NotRoutedYet(LookupError):
    """Intake spoke of a case routing has not routed yet: the message waits."""


def _pause(attempt: int) -> None:
    """A short, random wait, so that two who collided do not collide once more."""
    time.sleep(random.uniform(0, 0.005 * (attempt + 1)))


class Routing(CaseStore):
    """Routing's event store, and what it does with the cases in it."""

    name = "routing"

    def __init__(self, env: dict | None = None, deadline_policies: Policies | None = None):
        super().__init__(env)
        self._deadline_policies = deadline_policies

    @property
    def deadline_policies(self) -> Policies:
        return self._deadline_policies or policies()

    def case(self, case_id: UUID | str) -> Case:
        try:
            return self.repository.get(UUID(str(case_id)))
        except (ValueError, AggregateNotFoundError):
            raise UnknownCase(str(case_id)) from None

    # -- what intake says ------------------------------------------------------------
    def take(self, event: dict, tracking: Tracking | None = None,
             redirect: Callable[[str], str] = lambda office: office) -> None:
        """Act on one of intake's public events (see `take_all`); raises NotRoutedYet
        when its case is not routed yet."""
        waiting = self.take_all([(event, tracking)], redirect=redirect)
        if waiting:
            raise waiting[0][1]

    def take_all(self, taken: Sequence[tuple[dict, Tracking | None]],
                 redirect: Callable[[str], str] = lambda office: office,
                 ) -> list[tuple[Tracking | None, NotRoutedYet]]:
        """Act on intake's public events, in the order they came (a batch the consumer
        was delivered), and record what they decided in one transaction with their
        trackings, so that a redelivered message changes nothing. Events of one case act
        on one aggregate, each on what the ones before it did. An event of a case not
        routed yet is left out, not even tracked: returned, with why, to wait."""
        cases: dict[UUID, Case] = {}
        touched: list[Case] = []  # each aggregate once, whatever replaced it in `cases`
        trackings: list[Tracking] = []
        waiting: list[tuple[Tracking | None, NotRoutedYet]] = []
        decided = False
        for event, tracking in taken:
            case_id = UUID(str(event["case_id"]))
            if event["event_type"] == "CaseSubmitted":
                case = self._route(event, redirect)
            elif case_id in cases:
                case = cases[case_id]
            else:
                try:
                    case = self.case(case_id)
                except UnknownCase:
                    waiting.append((tracking, NotRoutedYet(
                        f"{event['event_type']} before the case was routed")))
                    continue
            if cases.get(case_id) is not case:
                cases[case_id] = case
                touched.append(case)
            react = CITIZEN_REACTIONS.get(event["event_type"])
            if react is not None and react(self, case, event) is False:
                continue
            decided = True
            if tracking is not None:
                trackings.append(tracking)
        if decided:
            self.record(*touched, trackings=trackings)
        return waiting

    def _route(self, event: dict, redirect: Callable[[str], str]) -> Case:
        """A submitted case goes to its office; `redirect` follows the directory's merges;
        a case about the office that recorded it never goes to that office."""
        data = event["data"]
        return Case.route(case_id=UUID(str(event["case_id"])),
                          tracking_code=event["tracking_code"],
                          commune=event["location"]["commune"], case_type=data["type"],
                          category=category_of(data["category"], data.get("level")),
                          received_at=event["occurred_at"], language=data["language"],
                          policies=self.deadline_policies, redirect=redirect,
                          excluded_office=data.get("recorded_by_office")
                          if data.get("about_recording_office") else None)

    def _information_provided(self, case: Case, event: dict) -> None:
        if event["data"]["answers_request"]:
            case.information_provided(now=event["occurred_at"])

    def _feedback(self, case: Case, event: dict) -> None:
        case.feedback(satisfied=event["data"]["satisfied"])

    def _appealed(self, case: Case, event: dict) -> bool:
        try:
            case.appeal(now=event["occurred_at"], policies=self.deadline_policies)
        except InvalidTransition:
            return False  # an appeal of a case no longer resolved changes nothing
        return True

    def _withdrawn(self, case: Case, event: dict) -> None:
        case.withdraw()

    # -- the office's commands -------------------------------------------------------
    def act(self, case_id: UUID | str, actor: Actor, action: str,
            decide: Callable[[Case], None]) -> Case:
        """Let the case decide on an office's command, and record it. Only the roles the
        action allows, at the case's office, may. When the case changed meanwhile, only
        readings of its file (which change nothing the actor decided on) let the command
        run again on the new state; anything else collides: reload and decide again.
        The domain's InvalidTransition says why the case's state refuses it."""
        roles = ACTIONS[action]
        for attempt in range(OPEN_ATTEMPTS):
            case = self.case(case_id)
            if actor.role not in roles or not actor.works_at(case.office_id):
                raise NotAllowed(f"only the {' or '.join(roles)} of {case.office_id} may do this")
            seen = case.version
            decide(case)
            try:
                self.record(case)
            except IntegrityError:
                since = self.events.get(case.id, gt=seen)
                if all(type(e).__name__ == "CaseFileOpened" for e in since):
                    _pause(attempt)
                    continue
                break
            return case
        raise Collided("someone else changed this case at the same moment; "
                       "reload it and try again")

    def acknowledge(self, case_id, actor: Actor) -> Case:
        return self.act(case_id, actor, "acknowledge", lambda case: case.acknowledge(by=actor.id))

    def request_information(self, case_id, actor: Actor, question: Callable[[Case], str],
                            now: datetime) -> Case:
        """`question` gives the words for the case (the office's, or a standard reply's in
        the case's language)."""
        return self.act(case_id, actor, "request-info", lambda case: case.request_information(
            question(case), by=actor.id, now=now))

    def resolve(self, case_id, actor: Actor, resolution: Callable[[Case], str]) -> Case:
        return self.act(case_id, actor, "resolve",
                        lambda case: case.resolve(resolution(case), by=actor.id))

    def transfer(self, case_id, actor: Actor, to_office: str, reason: str,
                 now: datetime) -> Case:
        return self.act(case_id, actor, "transfer", lambda case: case.transfer(
            to_office, reason, by=actor.id, now=now, policies=self.deadline_policies))

    def escalate(self, case_id, actor: Actor, explanation: str, now: datetime) -> Case:
        return self.act(case_id, actor, "escalate", lambda case: case.escalate_by_office(
            explanation, by=actor.id, now=now, policies=self.deadline_policies))

    def add_note(self, case_id, actor: Actor, text: str) -> Case:
        return self.act(case_id, actor, "note", lambda case: case.add_note(text, by=actor.id))

    def record_findings(self, case_id, actor: Actor, findings: str,
                        recommendation: str) -> Case:
        return self.act(case_id, actor, "findings", lambda case: case.record_findings(
            findings, recommendation, by=actor.id))

    def close_case(self, case_id, actor: Actor) -> Case:
        return self.act(case_id, actor, "close", lambda case: case.close(by=actor.id))

    def assign(self, case_id, actor: Actor, staff_id: str) -> Case:
        """The caller has checked that the assignee is one of the office's active staff."""
        return self.act(case_id, actor, "assign",
                        lambda case: case.assign(staff_id, by=actor.id))

    # -- reading the case file ---------------------------------------------------------
    def readable(self, case_id, reader: Actor) -> Case:
        """The case, if this reader may read its file: its office's staff and ombudsman,
        auditors and admins."""
        case = self.case(case_id)
        if reader.role in ("staff", "ombudsman") and not reader.works_at(case.office_id):
            raise NotAllowed(f"only the staff and ombudsman of {case.office_id}, auditors "
                             "and admins may read this case file")
        return case

    def open_file(self, case: Case, reader: Actor) -> Case:
        """Record that the reader opened the case's file; the case as they read it.
        Readings at the same moment collide on the case's version: each reads the case
        again (and who may read it: a transfer may have moved it) and records again."""
        for attempt in range(OPEN_ATTEMPTS):
            case.open_file(by=reader.id, role=reader.role, office_id=reader.office_id)
            try:
                self.record(case)
            except IntegrityError:
                _pause(attempt)
                case = self.readable(case.id, reader)
                continue
            return case
        raise Collided("the case keeps changing; try again")

    def words_for_citizen(self, case_id: str) -> dict | None:
        """What was last said to the citizen of a sensitive case (see Case.words_for_citizen);
        None for any other case, or one routing does not know."""
        try:
            return self.case(case_id).words_for_citizen()
        except UnknownCase:
            return None

    # -- time ------------------------------------------------------------------------
    def check_deadlines(self, case_ids: Iterable[UUID], now: datetime) -> None:
        """Record the warnings and breaches now due on these cases (the deadline timers'
        read model finds them). Several instances may sweep at once: the second to record
        the same breach fails on the case's version and moves on."""
        for case_id in case_ids:
            case = self.repository.get(case_id)
            case.check_deadlines(now, self.deadline_policies)
            try:
                with metrics.deadlines_recorded(case):
                    self.record(case)
            except IntegrityError:
                pass  # another instance recorded it first


# What a case does when intake says the citizen answered, gave feedback, appealed or
# withdrew. A reaction that returns False records nothing, not even the message's
# tracking; any other event of a routed case records only its tracking.
CITIZEN_REACTIONS: dict[str, Callable[[Routing, Case, dict], Any]] = {
    "InformationProvided": Routing._information_provided,
    "FeedbackReceived": Routing._feedback,
    "CaseAppealed": Routing._appealed,
    "CaseWithdrawn": Routing._withdrawn,
}
