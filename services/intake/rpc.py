"""What other services ask of intake over RPC, each answered only to the service that
needs it (the broker says who asks; combined in service.Service)."""

from __future__ import annotations

import base64
from uuid import UUID

from services.intake import attachments, history, readmodels
from services.intake.domain import first_line
from shared.rpc import rpc

HIDDEN = "[sensitive case: only the ombudsman it went to reads this]"
# At most this many cases in one request for first lines (a page of a queue is fewer).
FIRST_LINES_MAX = 500
# At most this many cases in one request for contacts (a pass of the sender is fewer).
CONTACTS_MAX = 500


class Rpc:
    @rpc(callers=("routing",))
    def case_file(self, case_id: str, viewer_role: str) -> dict | None:
        """What an office reads of the case: never contact data nor gender, and of a
        sensitive case no words of the citizen unless the reader is the ombudsman. Only
        routing may ask (the broker says who asks), for a viewer it has authenticated."""
        case = self.store.case_by_id(case_id)
        if case is None:
            return None
        hidden = case.sensitive and viewer_role != "ombudsman"
        return {
            "case_id": str(case.id),
            "tracking_code": case.tracking_code,
            "type": case.type,
            "category": case.category,
            "language": case.language,
            "sensitive": case.sensitive,
            "description": HIDDEN if hidden else case.description,
            "description_hidden": hidden,
            "rating": case.rating,
            "channel": case.channel,
            "anonymous": case.anonymous,
            "personal_data": case.personal_data,
            "submitted_at": case.created_on.isoformat(),
            "messages": [
                {"text": HIDDEN if hidden else m["text"], "at": m["at"].isoformat(),
                 "answers_request": m["answers_request"]}
                for m in case.messages
            ],
            "feedback": [
                {"satisfied": f["satisfied"], "rating": f["rating"],
                 "comment": HIDDEN if hidden and f["comment"] else f["comment"],
                 "at": f["at"].isoformat()}
                for f in case.feedback
            ],
            "attachments": self._files_of(case),
            # What an Open311 client referred to (never fetched), as the citizen's words.
            "media_urls": [] if hidden else list(case.media_references),
        }

    def _files_of(self, case) -> list[dict]:
        """The case's files, metadata only (for every reader of the file, a sensitive
        case's too: what kind, how large, who added it; never the bytes)."""
        if not case.attachments:
            return []
        with self.db.transaction() as cursor:
            stored = attachments.of_case(cursor, case.id)
        return [
            {"attachment_id": a["attachment_id"], "kind": a["kind"],
             "media_type": a["media_type"], "size": a["size"], "sha256": a["sha256"],
             "removed": list(a["removed"]), "added_by": a["added_by"],
             "at": a["at"].isoformat(),
             "thumbnail": a["attachment_id"] in stored
             and stored[a["attachment_id"]].variant("thumbnail") is not None,
             "erased": case.personal_data_erased}
            for a in case.attachments
        ]

    @rpc(callers=("routing",))
    def attachment_part(self, case_id: str, attachment_id: str, variant, n: int,
                        viewer_role: str) -> dict | None:
        """Part n (0-based) of a case's file, opened, for routing to stream to a reader it
        has authenticated and found allowed to read the case file: None if the case has
        no such file; a refusal when this viewer may not open it (a sensitive case's
        files are the ombudsman's; an auditor reads metadata only) or it is erased."""
        case = self.store.case_by_id(case_id)
        name = attachments.variant_named(variant)
        if case is None or name is None or case.attachment(str(attachment_id)) is None:
            return None
        if viewer_role == "auditor":
            return {"refused": "an auditor reads the files' metadata, not the files"}
        if case.sensitive and viewer_role != "ombudsman":
            return {"refused": "only the ombudsman opens a sensitive case's files"}
        if case.personal_data_erased:
            return {"refused": "erased"}
        files = attachments.Files(self.db, self.master_key)
        stored = files.row(UUID(str(attachment_id)))
        chosen = stored.variant(name) if stored is not None else None
        if chosen is None:
            return None
        number, media_type, count = chosen
        if not isinstance(n, int) or not 0 <= n < count:
            return None
        try:
            data = files.part(stored, number, n, count)
        except attachments.Erased:
            return {"refused": "erased"}
        return {"media_type": media_type, "size": files.size(stored, number, count),
                "parts": count, "data": base64.b64encode(data).decode()}

    @rpc(callers=("routing",))
    def first_lines(self, case_ids: list[str], viewer_role: str) -> dict[str, str | None]:
        """The first line of each case's description, for a page of an office's queue:
        one query for the page (the case list keeps descriptions of ordinary cases); a
        sensitive case's only for the ombudsman, read from its own events, else null."""
        ids = []
        for case_id in case_ids[:FIRST_LINES_MAX]:
            try:
                ids.append(UUID(str(case_id)))
            except ValueError:
                continue
        with self.db.transaction() as cursor:
            rows = readmodels.listed(cursor, ids)
        lines = {}
        for case_id in ids:
            row = rows.get(case_id)
            if row is not None and not row["sensitive"]:
                lines[str(case_id)] = first_line(row["public_description"])
            elif viewer_role == "ombudsman" or row is None:
                # A sensitive case for its ombudsman, or one the list has not caught up with.
                case = self.store.case_by_id(case_id)
                hidden = case is None or (case.sensitive and viewer_role != "ombudsman")
                lines[str(case_id)] = None if hidden else first_line(case.description)
            else:
                lines[str(case_id)] = None
        return lines

    @rpc(callers=("notifications",))
    def contacts_for(self, case_ids: list[str]) -> dict[str, dict | None]:
        """How to reach the citizen of each case (at most CONTACTS_MAX), only if they
        consented, are not anonymous and their data was not erased (else null). For
        notifications, which asks for every citizen a pass of its sender writes to in one
        request (the cases read in one query); never shown to offices as such."""
        asked = {}
        for case_id in case_ids[:CONTACTS_MAX]:
            try:
                asked[case_id] = UUID(str(case_id))
            except ValueError:
                asked[case_id] = None
        with self.db.transaction() as cursor:
            cases = [case for case in self.store.aggregates(
                         cursor, [key for key in asked.values() if key is not None])
                     if not case.anonymous and case.consent_to_contact
                     and case.personal_data == "kept"]
        contacts = self._keys().contacts(cases)
        languages = {case.id: case.language for case in cases}
        answer: dict[str, dict | None] = {}
        for case_id, key in asked.items():
            contact = contacts.get(key)
            answer[str(case_id)] = None if contact is None else {
                "name": contact.get("name"), "phone": contact.get("phone"),
                "email": contact.get("email"), "language": languages[key]}
        return answer

    @rpc(callers=("reporting",))
    def gender_counts(self, filters: dict | None = None) -> list[dict]:
        """Cases by gender, office, area, type, category and month, for reporting (which
        suppresses small cells before anything is shown)."""
        with self.db.transaction() as cursor:
            return readmodels.gender_counts(cursor, filters or {})

    @rpc(callers=("reporting",))
    def case_history(self, case_id: str) -> list[dict]:
        """Intake's part of the case's history, for an audit (see shared/history.py)."""
        with self.db.transaction() as cursor:
            return history.case_history(cursor, case_id)
