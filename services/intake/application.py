"""Intake's use cases, as methods of its event store: a case submitted (once, however
often it is retried), the citizen's later messages, feedback and withdrawal, and the
erasure of the citizen's personal data.

What they need from the world is passed in: the case's view (a read model), the keys
and tokens kept in intake's tables (`Keys`), how new cases are recorded together
(`services.intake.appends`). No SQL and no nameko here."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.intake.domain import AttachmentLimits, Case, MessageLimits, NotAllowed
from services.intake.schemas import CONTACT_FIELDS
from shared.categories import categories
from shared.config import signing_secrets
from shared.events import STATUS_AFTER
from shared.store import CaseStore
from shared.tracking import case_id_for, format_tracking_code, normalise_tracking_code

# A case's view before any event of it reached the read model.
NOT_YET_VIEWED = {"status": "submitted", "office_id": None}
# Two commands racing on one case collide on its version; each is decided this often.
ATTEMPTS = 3


def _secret(purpose: str, value: str) -> bytes:
    return hmac.new(signing_secrets()[0].key, f"{purpose}:{value}".encode(),
                    hashlib.sha256).digest()


def new_tracking_code(idempotency_key: str | None) -> str:
    if idempotency_key:
        # The same key always gives the same code, hence the same case id: a retry, even
        # one racing the first attempt, collides on the case instead of creating another.
        number = int.from_bytes(_secret("idempotency", idempotency_key)[:8], "big")
    else:
        number = secrets.randbits(64)
    return format_tracking_code(number)


def fingerprint(payload: dict) -> str:
    """Tells a retry from a different submission under the same Idempotency-Key. Keyed,
    so the stored value says nothing about the phone number or name it covers."""
    return _secret("fingerprint", json.dumps(payload, sort_keys=True, default=str)).hex()


@dataclass(frozen=True)
class Issued:
    """What a new case gets from intake's keys: the citizen's token, and the contact
    sealed with the case's own key (None without a contact, or once it was erased)."""

    citizen_token: str
    citizen_token_hash: str
    sealed_contact: str | None = None
    erased: bool = False  # the code belongs to a case whose personal data was erased


class Keys(Protocol):
    """The keys and tokens intake keeps beside its events (services.intake.privacy)."""

    def issue(self, case_id: UUID, contact: dict[str, str]) -> Issued:
        """The token (the same for every retry) and the sealed contact of a new case;
        raises shared.access.Unauthenticated when the token's secret is out of use."""

    def revoke_tokens(self, case_id: UUID, reason: str) -> None: ...

    def destroy_key(self, case_id: UUID) -> str | None:
        """Forget the case's key for good; returns the office the case is with."""


@dataclass(frozen=True)
class Desk:
    """Who recorded a case at an office desk, and the citizen's consent to it."""

    office_id: str
    about_this_office: bool
    consent_how: str
    consent_at: datetime

    def recorded(self) -> dict:
        return {"recorded_by_office": self.office_id,
                "about_recording_office": self.about_this_office,
                "consent": {"how": self.consent_how, "at": self.consent_at.isoformat()}}

    def fingerprinted(self) -> dict:
        """What tells a retry from another case: not the instant of the consent, which
        a retry gives anew."""
        return {"recorded_by_office": self.office_id,
                "about_recording_office": self.about_this_office,
                "consent": self.consent_how}


class UsedForAnother(NotAllowed):
    """The Idempotency-Key was used for a different submission."""


class CaseChanged(NotAllowed):
    """The case kept changing under the command: the citizen may try again."""


ViewOf = Callable[[UUID], dict]


def view_ids(view: dict) -> tuple[str | None, str | None]:
    """The office's open question and the resolution the view knows, as the case's
    events name them."""
    question, resolution = view.get("question_id"), view.get("resolution_id")
    return (str(question) if question else None, str(resolution) if resolution else None)


class Intake(CaseStore):
    name = "intake"

    # -- reading a case --------------------------------------------------------------
    def case_by_code(self, tracking_code: str) -> Case | None:
        code = normalise_tracking_code(tracking_code)
        return None if code is None else self.case_by_id(case_id_for(code))

    def case_by_id(self, case_id: UUID | str) -> Case | None:
        try:
            return self.repository.get(UUID(str(case_id)))
        except (ValueError, AggregateNotFoundError):
            return None

    # -- submission ------------------------------------------------------------------
    def submit(self, payload: dict, channel: str, idempotency_key: str | None, keys: Keys,
               record_new: Callable[[Case], bool] | None = None,
               media_url: str | None = None, desk: Desk | None = None) -> dict:
        """Record a new case from a checked submission (SubmitCase). A retry under the
        same Idempotency-Key answers as the first attempt did; `record_new` records the
        case together with others submitted at the same moment. `desk` says which office
        recorded it for the citizen, with their consent."""
        record_new = record_new or self._record_new
        recorded = desk.recorded() if desk else {}
        complainant = payload["complainant"]
        contact = {f: complainant[f] for f in CONTACT_FIELDS if complainant.get(f)}
        category = categories()[payload["category"]]
        for _ in range(ATTEMPTS):
            tracking_code = new_tracking_code(idempotency_key)
            case_id = case_id_for(tracking_code)
            issued = keys.issue(case_id, contact)
            case = Case(
                case_id=case_id,
                context={"tracking_code": tracking_code,
                         "commune": payload["location"]["commune"], "office_id": None},
                type=payload["type"],
                category=category.code,
                description=payload.get("description", ""),
                language=payload["language"],
                anonymous=complainant["anonymous"],
                gender=complainant["gender"],
                rating=payload.get("rating"),
                citizen_token_hash=issued.citizen_token_hash,
                fingerprint=fingerprint({"channel": channel, **payload,
                                         **desk.fingerprinted()} if desk else
                                        {"channel": channel, **payload}),
                channel=channel,
                sensitive=category.sensitive,
                consent_to_contact=complainant["consent_to_contact"],
                sealed_contact=issued.sealed_contact,
                **recorded,
            )
            if media_url:  # recorded with the submission, in the same append
                case.refer_to_media(media_url)
            if issued.erased or not record_new(case):
                if not idempotency_key:
                    continue  # two random codes met: draw another
                existing = self.repository.get(case_id)
                if existing.fingerprint != case.fingerprint:
                    raise UsedForAnother("already used for a different submission")
            return {"case_id": case_id, "tracking_code": tracking_code,
                    "citizen_token": issued.citizen_token, "status": "submitted"}
        raise RuntimeError("no free tracking code after three draws")

    def _record_new(self, case: Case) -> bool:
        try:
            self.record(case)
        except IntegrityError:
            return False
        return True

    # -- what the citizen does later -------------------------------------------------
    def send_message(self, case_id: UUID, text: str, view_of: ViewOf,
                     limits: MessageLimits | None = None, now: datetime | None = None) -> dict:
        """A message of the citizen's; it answers the office's question if one is open."""
        def decide(case: Case, view: dict) -> dict:
            question_id, _ = view_ids(view)
            answers = case.send_message(text, view["status"], question_id, view["office_id"],
                                        limits, now)
            status = STATUS_AFTER["InformationProvided"] if answers else view["status"]
            return {"status": status, "answers_request": answers}

        return self._decide(case_id, view_of, decide)

    def add_attachment(self, case_id: UUID, file: dict, added_by: str,
                       adder_office_id: str | None, view_of: ViewOf,
                       limits: AttachmentLimits | None = None,
                       now: datetime | None = None) -> dict:
        """Record a file already stored (sealed) by intake: `file` holds its
        attachment_id, kind, media_type, size, sha256 and removed. Recorded before (a
        retry), nothing is recorded twice; "added" says whether this call recorded it."""
        def decide(case: Case, view: dict) -> dict:
            added = case.add_attachment(file["attachment_id"], file["kind"], file["media_type"],
                                        file["size"], file["sha256"], list(file["removed"]),
                                        added_by, adder_office_id, view["status"],
                                        view["office_id"], limits, now)
            return {"added": added}

        return self._decide(case_id, view_of, decide)

    def give_feedback(self, case_id: UUID, satisfied: bool, rating: int | None,
                      comment: str | None, view_of: ViewOf) -> dict:
        """Feedback after a resolution; not satisfied is an appeal to the ombudsman."""
        def decide(case: Case, view: dict) -> dict:
            _, resolution_id = view_ids(view)
            case.give_feedback(satisfied, rating, comment, view["status"], resolution_id,
                               view["office_id"])
            return {"status": view["status"] if satisfied else STATUS_AFTER["CaseAppealed"]}

        return self._decide(case_id, view_of, decide)

    def withdraw(self, case_id: UUID, reason: str | None, view_of: ViewOf) -> dict:
        def decide(case: Case, view: dict) -> dict:
            case.withdraw(reason, view["status"], view["office_id"])
            return {"status": STATUS_AFTER["CaseWithdrawn"]}

        return self._decide(case_id, view_of, decide)

    def _decide(self, case_id: UUID, view_of: ViewOf,
                decide: Callable[[Case, dict], dict]) -> dict:
        """Decide a citizen's command on the case and the view's status, and record it.
        Two commands racing on one case collide on its version: take the new state and
        decide again."""
        for _ in range(ATTEMPTS):
            case = self.repository.get(case_id)
            result = decide(case, view_of(case.id))
            try:
                self.record(case)
            except IntegrityError:
                continue
            return {"tracking_code": case.tracking_code, **result}
        raise CaseChanged("the case changed meanwhile; try again")

    # -- what an operator does -------------------------------------------------------
    def erase_personal_data(self, case_id: UUID, erased_by: str, keys: Keys) -> str:
        """Revoke every citizen token of the case, destroy its key and record
        PersonalDataErased (once). Returns what the case held: "none" (an anonymous
        case: only its tokens are revoked) or "erased". Raises AggregateNotFoundError."""
        for _ in range(ATTEMPTS):
            case = self.repository.get(case_id)
            # Whoever holds the citizen's phone must not follow the case any more.
            keys.revoke_tokens(case.id, "erased")
            if case.personal_data == "none":
                return "none"
            office_id = keys.destroy_key(case.id)
            if not case.erase_personal_data(erased_by, office_id):
                break  # erased before; the key is gone all the same
            try:
                self.record(case)
                break
            except IntegrityError:
                continue  # the citizen acted at the same moment: read the case again
        return "erased"
