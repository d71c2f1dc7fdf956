"""The citizen's side of a case: what was submitted, what the citizen added later, and
who may follow it.

Pure domain: no I/O. Codes, tokens, sealed contacts and the case's current status (which
the citizen view keeps from every service's events) are passed in by the service layer."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from shared.aggregate import Aggregate, event, id_from

WAITING_FOR_CITIZEN = "waiting-for-citizen"
RESOLVED = "resolved"
# Once a case is closed or withdrawn the citizen can add nothing more to it.
FINAL = ("closed", "withdrawn")


FIRST_LINE = 120


def first_line(description: str | None) -> str | None:
    """A description's first non-empty line, cut to what a row of a queue shows."""
    if description is None:
        return None
    line = next((line.strip() for line in description.splitlines() if line.strip()), "")
    return line if len(line) <= FIRST_LINE else line[:FIRST_LINE - 1].rstrip() + "…"


def nfc(text: str) -> str:
    """Khmer can be typed in several code point orders; store one."""
    return unicodedata.normalize("NFC", text)


class NotAllowed(Exception):
    """What the citizen asked for does not fit the case's state (a 409 at the edge)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TooManyMessages(NotAllowed):
    """The case holds as many of the citizen's messages as it takes, in all or today.
    `retry_after` is the seconds until one more is taken, None if never."""

    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class MessageLimits:
    """How many messages a case takes from the citizen, in all and in any 24 hours; an
    answer to the office's open question is always taken (the office asked for it)."""

    per_case: int
    per_day: int


@dataclass(frozen=True)
class AttachmentLimits:
    """How many files a case takes, how many bytes of them in all, and how many in any
    24 hours, whoever adds them (the citizen, the office, the ombudsman)."""

    per_case: int
    bytes_per_case: int
    per_day: int


class TooManyFiles(NotAllowed):
    """The case holds as many files (or bytes of them) as it takes, in all or today.
    `retry_after` is the seconds until one more is taken, None if never (a 413)."""

    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


ADDED_BY = ("citizen", "staff", "ombudsman")

DAY = timedelta(days=1)


def wait_in_day(instants: list[datetime], per_day: int, now: datetime) -> float | None:
    """The seconds until one more is taken when `per_day` of `instants` fall in the last
    24 hours (a window that slides, so the wait ends when the oldest of them leaves it);
    None when one more is taken now."""
    today = [at for at in instants if at > now - DAY]
    if len(today) < per_day:
        return None
    return (min(today) + DAY - now).total_seconds()


class Case(Aggregate):
    """A case as the citizen made it. Later events carry the case's place and its last
    known office in `context`, for the public envelope.

    The methods that record what happens take `timestamp` where the case keeps when it
    happened: eventsourcing hands them the event's own instant, when it is recorded and
    when it is replayed."""

    create_id = id_from("case_id")

    def event_context(self) -> dict:
        return self.context_at(None)

    @event("CaseSubmitted")
    def __init__(
        self,
        case_id: UUID,
        context: dict,
        type: str,
        category: str,
        description: str,
        language: str,
        anonymous: bool,
        gender: str,
        rating: int | None,
        citizen_token_hash: str,
        fingerprint: str,
        channel: str,
        sensitive: bool = False,
        consent_to_contact: bool = False,
        sealed_contact: str | None = None,  # name, phone, email: ciphertext only
        # Recorded by staff at an office desk: which office, whether the case is about
        # that office's own conduct, and the citizen's consent ({"how", "at"}).
        recorded_by_office: str | None = None,
        about_recording_office: bool = False,
        consent: dict | None = None,
    ) -> None:
        self.tracking_code = context["tracking_code"]
        self.commune = context["commune"]
        self.type = type
        self.category = category
        self.description = description
        self.language = language
        self.anonymous = anonymous
        self.gender = gender
        self.rating = rating
        self.citizen_token_hash = citizen_token_hash
        self.fingerprint = fingerprint
        self.channel = channel
        self.sensitive = sensitive
        self.consent_to_contact = consent_to_contact
        self.sealed_contact = sealed_contact
        # Private, like the files: cases replayed from events stored before the desk
        # keep the same public state (services/intake/tests/test_stored_events.py).
        self._desk = {"recorded_by_office": recorded_by_office,
                      "about_recording_office": about_recording_office,
                      "consent": consent} if recorded_by_office else None
        self.messages: list[dict] = []
        self.answered: list[str] = []  # ids of the office's questions already answered
        self.feedback: list[dict] = []
        # The files' metadata (the bytes stay in intake's tables). Kept under a private
        # name: the state a case replays to from its events is compared with what the
        # earlier aggregate read back (services/intake/tests/test_stored_events.py).
        self._files: list[dict] = []
        self._media: list[str] = []  # media_url references an Open311 client gave
        self.withdrawn = False
        self.personal_data_erased = False

    def context_at(self, office_id: str | None) -> dict:
        context = {"tracking_code": self.tracking_code, "commune": self.commune,
                   "office_id": office_id}
        # A sensitive case's public events carry no words and travel apart (shared.events).
        return {**context, "sensitive": True} if self.sensitive else context

    @property
    def recorded_by_office(self) -> str | None:
        """The office whose staff recorded the case at its desk, if any."""
        return self._desk["recorded_by_office"] if self._desk else None

    @property
    def about_recording_office(self) -> bool:
        return bool(self._desk and self._desk["about_recording_office"])

    @property
    def consent(self) -> dict | None:
        """How and when the citizen consented to the desk recording the case."""
        return self._desk["consent"] if self._desk else None

    @property
    def attachments(self) -> list[dict]:
        return self._files

    @property
    def media_references(self) -> list[str]:
        return self._media

    def refer_to_media(self, url: str) -> None:
        """An Open311 client's `media_url`: kept as the reference it is, never fetched."""
        self._media_referenced(url=url, context=self.context_at(None))

    @event("MediaReferenced")
    def _media_referenced(self, url: str, context: dict) -> None:
        self._media.append(url)

    @property
    def personal_data(self) -> str:
        """What the case holds of the citizen's contact and files: "none", "kept" or
        "erased". A file (a photo, a voice) may say who the citizen is even when the case
        is anonymous, so it is personal data like the contact."""
        if self.sealed_contact is None and not self.attachments:
            return "none"
        return "erased" if self.personal_data_erased else "kept"

    def status_seen_by_citizen(self, status: str) -> str:
        """The view's status, unless the citizen's own withdrawal is newer than the view."""
        return "withdrawn" if self.withdrawn else status

    def possible_actions(self, status: str, question_id: str | None,
                         resolution_id: str | None) -> list[str]:
        """What the citizen may do now, so the app shows only what will be accepted."""
        if self.withdrawn or status in FINAL:
            return []
        actions = ["message", "withdraw"]
        if status == WAITING_FOR_CITIZEN and question_id and question_id not in self.answered:
            actions.append("answer")
        if status == RESOLVED and resolution_id and not any(
                f["resolution_id"] == resolution_id for f in self.feedback):
            actions.append("feedback")
        return actions

    # -- what the citizen does later ------------------------------------------------
    def send_message(self, text: str, status: str, question_id: str | None,
                     office_id: str | None, limits: MessageLimits | None = None,
                     now: datetime | None = None) -> bool:
        """A message of the citizen's. It answers the office's question when the case
        waits for the citizen and that question has no answer yet; returns whether it did."""
        if self.withdrawn or status in FINAL:
            raise NotAllowed(f"this case is {'withdrawn' if self.withdrawn else status}: "
                             "it takes no more messages")
        answers = (status == WAITING_FOR_CITIZEN and question_id is not None
                   and question_id not in self.answered)
        if limits is not None and not answers:
            self._check_room(limits, now)
        self._information_provided(text=text, answers_request=answers,
                                   question_id=question_id if answers else None,
                                   context=self.context_at(office_id))
        return answers

    @event("InformationProvided")
    def _information_provided(self, text: str, answers_request: bool,
                              question_id: str | None,  # the InformationRequested it answers
                              context: dict, timestamp: datetime | None = None) -> None:
        self.messages.append({"text": text, "answers_request": answers_request,
                              "at": timestamp})
        if question_id:
            self.answered.append(question_id)

    def _check_room(self, limits: MessageLimits, now: datetime | None) -> None:
        if len(self.messages) >= limits.per_case:
            raise TooManyMessages(f"a case takes at most {limits.per_case} messages; "
                                  "this one has them all", None)
        if now is None:
            return
        wait = wait_in_day([m["at"] for m in self.messages], limits.per_day, now)
        if wait is not None:
            raise TooManyMessages(f"a case takes at most {limits.per_day} messages in 24 "
                                  "hours; try again later", wait)

    def attachment(self, attachment_id: str) -> dict | None:
        return next((a for a in self.attachments if a["attachment_id"] == str(attachment_id)),
                    None)

    def check_attachment(self, size: int, status: str, limits: AttachmentLimits | None,
                         now: datetime | None) -> None:
        """Whether a file of `size` bytes would be taken now (NotAllowed if not)."""
        if self.withdrawn or status in FINAL:
            raise NotAllowed(f"this case is {'withdrawn' if self.withdrawn else status}: "
                             "it takes no more files")
        if self.personal_data_erased:
            raise NotAllowed("this case's personal data was erased: it takes no more files")
        if limits is None:
            return
        if len(self.attachments) >= limits.per_case:
            raise TooManyFiles(f"a case takes at most {limits.per_case} files; this one has "
                               "them all", None)
        held = sum(a["size"] for a in self.attachments)
        if held + size > limits.bytes_per_case:
            raise TooManyFiles(f"a case takes at most {limits.bytes_per_case} bytes of files; "
                               f"this one holds {held} and the file has {size}", None)
        if now is None:
            return
        wait = wait_in_day([a["at"] for a in self.attachments], limits.per_day, now)
        if wait is not None:
            raise TooManyFiles(f"a case takes at most {limits.per_day} files in 24 hours; "
                               "try again later", wait)

    def add_attachment(self, attachment_id: str, kind: str, media_type: str, size: int,
                       sha256: str, removed: list[str], added_by: str,
                       adder_office_id: str | None, status: str, office_id: str | None,
                       limits: AttachmentLimits | None = None,
                       now: datetime | None = None) -> bool:
        """A file added to the case (its bytes already stored, sealed, by intake).
        Added before under the same id (a retry): nothing is recorded, returns False."""
        if added_by not in ADDED_BY:
            raise ValueError(f"added_by must be one of {', '.join(ADDED_BY)}")
        if self.attachment(attachment_id) is not None:
            return False
        self.check_attachment(size, status, limits, now)
        self._attachment_added(attachment_id=str(attachment_id), kind=kind,
                               media_type=media_type, size=size, sha256=sha256,
                               removed=list(removed), added_by=added_by,
                               adder_office_id=adder_office_id,
                               context=self.context_at(office_id))
        return True

    @event("AttachmentAdded")
    def _attachment_added(self, attachment_id: str, kind: str, media_type: str, size: int,
                          sha256: str, removed: list[str], added_by: str,
                          adder_office_id: str | None, context: dict,
                          timestamp: datetime | None = None) -> None:
        self._files.append({
            "attachment_id": attachment_id, "kind": kind, "media_type": media_type,
            "size": size, "sha256": sha256, "removed": removed, "added_by": added_by,
            "adder_office_id": adder_office_id, "at": timestamp})

    def give_feedback(self, satisfied: bool, rating: int | None, comment: str | None,
                      status: str, resolution_id: str | None, office_id: str | None) -> None:
        """Feedback on a resolution, once per resolution. Not satisfied is an appeal, which
        routing takes to the ombudsman."""
        if self.withdrawn:
            raise NotAllowed("this case is withdrawn")
        if status != RESOLVED or resolution_id is None:
            raise NotAllowed(f"feedback is given once the case is resolved; it is {status}")
        if any(f["resolution_id"] == resolution_id for f in self.feedback):
            raise NotAllowed("feedback on this resolution was already given")
        context = self.context_at(office_id)
        self._feedback_received(satisfied=satisfied, rating=rating, comment=comment,
                                resolution_id=resolution_id, context=context)
        if not satisfied:
            self._appealed(resolution_id=resolution_id, context=context)

    @event("FeedbackReceived")
    def _feedback_received(self, satisfied: bool, rating: int | None, comment: str | None,
                           resolution_id: str,  # the CaseResolved event it is about
                           context: dict, timestamp: datetime | None = None) -> None:
        self.feedback.append({"satisfied": satisfied, "rating": rating, "comment": comment,
                              "resolution_id": resolution_id, "at": timestamp})

    @event("CaseAppealed")
    def _appealed(self, resolution_id: str, context: dict) -> None:
        pass  # routing takes the appeal to the ombudsman; the case itself keeps nothing

    def withdraw(self, reason: str | None, status: str, office_id: str | None) -> None:
        if self.withdrawn or status in FINAL:
            raise NotAllowed(f"this case is already {'withdrawn' if self.withdrawn else status}")
        self._withdrawn(reason=reason, context=self.context_at(office_id))

    @event("CaseWithdrawn")
    def _withdrawn(self, reason: str | None, context: dict) -> None:
        self.withdrawn = True

    # -- what an operator does --------------------------------------------------------
    def erase_personal_data(self, erased_by: str, office_id: str | None) -> bool:
        """Record that the case's key was destroyed; False if there was nothing to erase."""
        if self.personal_data != "kept":
            return False
        self._personal_data_erased(erased_by=erased_by, context=self.context_at(office_id))
        return True

    @event("PersonalDataErased")
    def _personal_data_erased(self, erased_by: str, context: dict) -> None:
        self.personal_data_erased = True
