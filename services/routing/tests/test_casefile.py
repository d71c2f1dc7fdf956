"""The case file's attachments and the download of one, on routing's in-memory store with
a stand-in for intake's RPC: who may open a file, what the answer's headers say, and a
file passed on a part at a time."""

import base64
import hashlib
import uuid
from datetime import UTC, datetime

import eventlet
import pytest
from eventsourcing.persistence import Tracking

from services.routing import casefile
from services.routing.application import Routing
from services.routing.schemas import CaseFileOut
from shared.access import Principal
from shared.categories import categories
from shared.tracking import case_id_for, format_tracking_code
from shared.web import HttpError

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CODE = format_tracking_code(123456789)
PHOTO, VOICE = str(uuid.uuid4()), str(uuid.uuid4())
STAFF = Principal(role="staff", id="sokha", office_id="commune-120101")
OTHER_STAFF = Principal(role="staff", id="kosal", office_id="commune-120109")
AUDITOR = Principal(role="auditor", id="vanna")
ADMIN = Principal(role="admin", id="root")
OMBUDSMAN = Principal(role="ombudsman", id="chenda", office_id="district-ombudsman-1201")
PART = 256 * 1024
BYTES = bytes(range(256)) * 2100  # three parts, the last one short


def fact(attachment_id, kind, media_type, **more) -> dict:
    return {"attachment_id": attachment_id, "kind": kind, "media_type": media_type,
            "size": len(BYTES), "sha256": hashlib.sha256(BYTES).hexdigest(),
            "removed": ["GPS position removed"], "added_by": "citizen",
            "at": T0.isoformat(), "thumbnail": kind == "photo", "erased": False, **more}


def submitted(**more) -> dict:
    return {"category": "water-supply", "language": "km", "channel": "web",
            "submitted_at": T0.isoformat(), "description": "ទឹកមិនហូរ", "messages": [],
            "feedback": [], "rating": None, **more}


class Intake:
    """intake's RPC as routing calls it: the file cut into parts of 256 KiB."""

    def __init__(self, data=BYTES, erased=False, sensitive=False):
        self.data, self.erased, self.sensitive = data, erased, sensitive
        self.asked: list[tuple] = []
        self.stall_from: int | None = None

    def attachment_part(self, case_id, attachment_id, variant, n, viewer_role):
        self.asked.append((attachment_id, variant, n, viewer_role))
        if self.stall_from is not None and n >= self.stall_from:
            eventlet.sleep(casefile.INTAKE_TIMEOUT + 1)
        if attachment_id not in (PHOTO, VOICE) or (variant == "thumbnail"
                                                   and attachment_id != PHOTO):
            return None
        if viewer_role == "auditor":
            return {"refused": "an auditor reads the files' metadata, not the files"}
        if self.sensitive and viewer_role != "ombudsman":
            return {"refused": "only the ombudsman opens a sensitive case's files"}
        if self.erased:
            return {"refused": "erased"}
        data = self.data if variant == "file" else self.data[:1000]
        parts = [data[i:i + PART] for i in range(0, len(data), PART)]
        return {"media_type": "image/jpeg" if attachment_id == PHOTO else "audio/mpeg",
                "size": len(data), "parts": len(parts),
                "data": base64.b64encode(parts[n]).decode()}


class Reader(casefile.CaseFiles):
    """The mixin with the store and intake it would have in the service."""

    def __init__(self, store, intake):
        self.store, self.intake = store, intake


@pytest.fixture
def routing(policies):
    store = Routing(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, deadline_policies=policies)
    yield store
    store.close()


def routed(routing, category="water-supply") -> uuid.UUID:
    case_id = case_id_for(CODE)
    routing.take({"event_type": "CaseSubmitted", "case_id": str(case_id), "tracking_code": CODE,
                  "occurred_at": T0, "location": {"commune": "120101"},
                  "data": {"type": "complaint", "category": category, "language": "km"}},
                 Tracking("intake", 1))
    return case_id


def download(reader, principal, attachment_id=PHOTO, variant="file"):
    handler = casefile.CaseFiles.read_attachment.__wrapped__
    return handler(reader, None, tracking_code=CODE.lower().replace("-", " "),
                   attachment_id=attachment_id, principal=principal,
                   query={"variant": variant})


def refusal(reader, principal, **where) -> HttpError:
    with pytest.raises(HttpError) as refused:
        download(reader, principal, **where)
    return refused.value


def kinds(routing, case_id) -> list[str]:
    return [type(e).__name__ for e in routing.events.get(case_id)]


def test_the_case_file_lists_each_attachments_facts_and_where_routing_serves_it(routing):
    case = routing.case(routed(routing))
    file = CaseFileOut().dump(casefile.case_file(case, submitted(attachments=[
        fact(PHOTO, "photo", "image/jpeg"), fact(VOICE, "voice", "audio/mpeg", erased=True)]),
        {"id": case.office_id, "name_en": "x", "name_km": "x"}, "auditor"))
    photo, voice = file["attachments"]
    assert photo == {
        "attachment_id": PHOTO, "kind": "photo", "media_type": "image/jpeg", "size": len(BYTES),
        "sha256": hashlib.sha256(BYTES).hexdigest(), "removed": ["GPS position removed"],
        "added_by": "citizen", "at": T0.isoformat(), "erased": False,
        "url": f"/v1/cases/{CODE}/attachments/{PHOTO}",
        "thumbnail_url": f"/v1/cases/{CODE}/attachments/{PHOTO}?variant=thumbnail"}
    assert voice["erased"] is True and voice["thumbnail_url"] is None
    assert voice["url"] == f"/v1/cases/{CODE}/attachments/{VOICE}"


def test_an_intake_without_attachments_gives_an_empty_list(routing):
    case = routing.case(routed(routing))
    file = casefile.case_file(case, submitted(), {"id": case.office_id, "name_en": "x",
                                                  "name_km": "x"}, "staff")
    assert file["attachments"] == []
    assert CaseFileOut().dump(file)["attachments"] == []


def test_the_office_downloads_the_file_a_part_at_a_time_and_the_reading_is_recorded(routing):
    case_id = routed(routing)
    intake = Intake()
    response = download(Reader(routing, intake), STAFF)
    assert intake.asked == [(PHOTO, "file", 0, "staff")], "only the first part before answering"
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{PHOTO}.jpg"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Content-Length"] == str(len(BYTES))
    chunks = list(response.response)
    assert [len(c) for c in chunks] == [PART, PART, len(BYTES) - 2 * PART]
    assert b"".join(chunks) == BYTES
    assert [n for _, _, n, _ in intake.asked] == [0, 1, 2]
    assert kinds(routing, case_id) == ["CaseRouted", "CaseFileOpened"]


def test_a_thumbnail_is_served_with_its_own_size_and_no_reading_of_its_own(routing):
    case_id = routed(routing)
    response = download(Reader(routing, Intake()), ADMIN, variant="thumbnail")
    assert response.headers["Content-Length"] == "1000"
    assert b"".join(response.response) == BYTES[:1000]
    assert kinds(routing, case_id) == ["CaseRouted"]


def test_auditors_read_the_facts_only_and_other_offices_nothing(routing):
    case_id = routed(routing)
    intake = Intake()
    assert refusal(Reader(routing, intake), AUDITOR).status == 403
    assert refusal(Reader(routing, intake), AUDITOR).errors == {
        "Authorization": ["auditors read the attachments' metadata only"]}
    assert refusal(Reader(routing, intake), OTHER_STAFF).status == 403
    assert intake.asked == [] and kinds(routing, case_id) == ["CaseRouted"]


def test_a_sensitive_cases_files_are_the_ombudsmans_only(routing):
    sensitive = next(code for code, c in categories().items() if c.sensitive)
    routed(routing, sensitive)
    intake = Intake(sensitive=True)
    office = routing.case(case_id_for(CODE)).office_id
    staff = Principal(role="staff", id="sokha", office_id=office)
    ombudsman = Principal(role="ombudsman", id="chenda", office_id=office)
    assert refusal(Reader(routing, intake), staff).errors == {
        "Authorization": ["only the ombudsman opens this file"]}
    assert intake.asked == []
    assert b"".join(download(Reader(routing, intake), ombudsman).response) == BYTES


def test_unknown_erased_and_unreadable_files(routing):
    routed(routing)
    assert refusal(Reader(routing, Intake()), STAFF, attachment_id=str(uuid.uuid4())).status == 404
    assert refusal(Reader(routing, Intake()), STAFF, attachment_id="not-an-id").status == 404
    assert refusal(Reader(routing, Intake()), STAFF, variant="thumbnail",
                   attachment_id=VOICE).status == 404
    assert refusal(Reader(routing, Intake(erased=True)), STAFF).status == 410
    assert refusal(Reader(routing, Intake()), OMBUDSMAN).status == 403  # another office's
    with pytest.raises(HttpError) as unknown_case:
        handler = casefile.CaseFiles.read_attachment.__wrapped__
        handler(Reader(routing, Intake()), None, tracking_code="nonsense", attachment_id=PHOTO,
                principal=STAFF, query={"variant": "file"})
    assert unknown_case.value.status == 404


def test_intake_silent_before_the_first_byte_is_a_503_and_later_cuts_the_file_short(
        routing, monkeypatch):
    routed(routing)
    monkeypatch.setattr(casefile, "INTAKE_TIMEOUT", 0.05)
    silent = Intake()
    silent.stall_from = 0
    answer = refusal(Reader(routing, silent), STAFF)
    assert answer.status == 503 and answer.headers == {"Retry-After": "1"}
    stalling = Intake()
    stalling.stall_from = 1
    chunks = download(Reader(routing, stalling), STAFF).response
    assert len(next(chunks)) == PART
    with pytest.raises(casefile.IncompleteFile):
        next(chunks)
