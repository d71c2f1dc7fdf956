"""A case's files (evidence): the citizen, the office the case is with and the ombudsman
above it add photos, PDFs and voice notes; the citizen downloads their own (offices read
them through routing, which asks intake over RPC). Combined in service.Service.

An upload goes: the body spooled by the server (never whole in memory, refused as soon
as it is too large), cleaned (services/intake/evidence.py, in a thread of its own, a few
at a time), stored sealed (services/intake/attachments.py), recorded on the case
(AttachmentAdded), marked recorded. A crash between storing and recording leaves a row
the sweep finishes or deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import BinaryIO
from uuid import UUID, uuid4, uuid5

from eventlet import tpool
from eventlet.semaphore import Semaphore
from marshmallow import fields, validate
from nameko.timer import timer
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.formparser import parse_form_data
from werkzeug.wrappers import Response

from services.intake import attachments, evidence, readmodels
from services.intake.application import CaseChanged
from services.intake.domain import Case, NotAllowed, TooManyFiles
from services.intake.schemas import AttachmentStored
from shared import access
from shared.downloads import MEDIA_TYPES, download_headers
from shared.limits import retry_after
from shared.offices import ombudsman_above
from shared.settings import settings
from shared.tracking import case_id_for, normalise_tracking_code
from shared.web import HttpError, Strict, endpoint, forbidden, not_found, spooled

IDEMPOTENCY_KEY = {"Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 200}}
# A multipart body carries its boundaries and headers beside the file.
FORM_OVERHEAD = 64 * 1024
# Decoding a photo takes memory (a 40-megapixel one some 160 MB while it is re-made) and
# a core: this many files are cleaned at once in a process, the others wait their turn.
# The threads are eventlet's pool's, which nothing else in intake uses: as few as that,
# since each thread's allocator keeps the memory of the largest photo it decoded.
CLEANING_AT_ONCE = 2
_cleaning = Semaphore(CLEANING_AT_ONCE)
tpool.set_num_threads(CLEANING_AT_ONCE)
ERASED = "this file was erased with the case's personal data"
DOWNLOADS = MEDIA_TYPES


def upload_limit() -> int:
    return settings().attachment_max_bytes + FORM_OVERHEAD


def sweep_interval() -> float:
    return max(1.0, min(60.0, settings().attachment_sweep_after / 2))


class Variant(Strict):
    variant = fields.String(load_default="file", validate=validate.OneOf(("file", "thumbnail")))


def _erased(service, path_args: dict) -> str | None:
    """Asked before the caller is authenticated: erasure revoked the citizen's tokens,
    and the answer to them is that the file is gone, not that they are nobody."""
    code = normalise_tracking_code(path_args.get("tracking_code", ""))
    if code is None:
        return None
    case = service.store.case_by_id(case_id_for(code))
    if case is None or not case.personal_data_erased:
        return None
    return ERASED if case.attachment(path_args.get("attachment_id", "")) else None


def refusal(refused: NotAllowed) -> HttpError:
    if isinstance(refused, TooManyFiles):
        if refused.retry_after is None:  # the case is full: waiting will not help
            return HttpError(413, {"file": [refused.message]})
        return HttpError(429, {"file": [refused.message]},
                         headers={"Retry-After": retry_after(refused.retry_after)})
    return HttpError(409, {"status": [refused.message]})


def the_file(request) -> BinaryIO:
    """The uploaded file: the body itself, or the one field `file` of a multipart form.
    Whatever Content-Type says of the file itself is not believed (evidence.clean looks)."""
    body = request.environ["wsgi.input"]  # spooled by the server (shared.web)
    if not request.headers.get("Content-Type", "").lower().startswith("multipart/form-data"):
        return body

    def stream_factory(total_content_length, content_type, filename, content_length=None):
        return spooled()

    try:
        _, form, files = parse_form_data(request.environ, stream_factory=stream_factory,
                                         max_form_memory_size=FORM_OVERHEAD, max_form_parts=8,
                                         silent=False)
    except RequestEntityTooLarge:
        raise HttpError(413, {"file": ["the form's fields beside the file are too large"]}) \
            from None
    except (ValueError, HTTPException):
        raise HttpError(400, {"file": ["the multipart body cannot be read"]}) from None
    chosen = files.getlist("file")
    if len(chosen) != 1 or len(files) != 1 or form:
        raise HttpError(400, {"file": ["send one field, `file`, holding the file"]})
    stream = chosen[0].stream
    stream.seek(0)
    return stream


def clean(source: BinaryIO, limits: evidence.Limits) -> evidence.Cleaned:
    """evidence.clean in an OS thread, a few at a time, so a large photo neither holds
    the process's other requests (nor its broker heartbeats) nor its memory."""
    source.seek(0, 2)
    size = source.tell()
    source.seek(0)
    if size > limits.max_bytes:
        raise evidence.Refused(413, f"a file may have at most {limits.max_bytes} bytes")
    with _cleaning:
        return tpool.execute(evidence.clean, source, limits)


class Evidence:
    """Files added to a case and read back by its citizen."""

    def _files(self) -> attachments.Files:
        return attachments.Files(self.db, self.master_key)

    def _adder(self, tracking_code: str, principal: access.Principal) -> tuple[Case, str]:
        """The case, if this principal may add to it: its citizen; staff of the office it
        is with (not of a sensitive case); an ombudsman of that office or above it."""
        if principal.role == "citizen":
            return self._citizens_case(tracking_code, principal), "citizen"
        case = self.store.case_by_code(tracking_code)
        if case is None:
            raise not_found("case")
        with self.db.transaction() as cursor:
            office = readmodels.office_of(cursor, case.id)
        if principal.role == "staff" and principal.works_at(office) and not case.sensitive:
            return case, "staff"
        if principal.role == "ombudsman" and principal.office_id in _oversight(office):
            return case, "ombudsman"
        raise forbidden("only the citizen, the office the case is with and the ombudsman "
                        "above it add files to it" + (" (a sensitive case: the ombudsman)"
                                                      if case.sensitive else ""))

    @endpoint("POST", "/v1/cases/{tracking_code}/attachments",
              allow=("citizen", "staff", "ombudsman"), upload=upload_limit,
              response=AttachmentStored, status=201, headers=IDEMPOTENCY_KEY,
              errors={409: "the case is closed or withdrawn, or its data was erased, or the "
                           "Idempotency-Key was used for another file",
                      410: "the case's personal data and files were erased",
                      413: "the file is too large, or the case holds all the files it takes",
                      415: "not a photo, a PDF or a voice note, or not a sound one",
                      429: "the case took all the files it takes in 24 hours",
                      503: "the file could not be recorded now; send it again"})
    def add_attachment(self, request, tracking_code, principal):
        """Add a photo (JPEG, PNG, WebP, HEIC), a PDF or a voice note to the case: the
        file as the body, or a multipart form with one field `file`. What identifies (a
        photo's position, a camera's serial number) is taken out before it is kept."""
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 200):
            raise HttpError(400, {"Idempotency-Key": ["must be 1 to 200 characters"]})
        case, added_by = self._adder(tracking_code, principal)
        # The same key names the same file: a retry finds what the first attempt stored,
        # and another file under a key already used is refused, as a submission is.
        attachment_id = uuid5(case.id, f"attachment:{key}") if key else uuid4()
        now = datetime.now(UTC)
        files = self._files()
        stored = files.row(attachment_id)
        if stored is None:
            try:  # refuse early what the case cannot take whatever the file
                case.check_attachment(0, self._view(case.id)["status"],
                                      self.limit.attachments, now)
            except NotAllowed as refused:
                raise refusal(refused) from None
        source = the_file(request)
        try:
            digest = files.digest(case.id, source)
            if stored is not None:
                if stored.upload_digest != digest:
                    raise HttpError(409, {"Idempotency-Key": [
                        "already used for another file of this case"]})
                if case.attachment(str(attachment_id)) is not None:
                    return stored.described()
            else:
                cleaned = clean(source, self.limit.files)
                stored = files.store(case.id, attachment_id, cleaned, digest)
        except evidence.Refused as refused:
            raise HttpError(refused.status, {"file": [refused.message]}) from None
        except attachments.Erased as erased:
            raise HttpError(410, {"_": [str(erased)]}) from None
        finally:
            source.close()
        return self._record(case, stored, added_by, principal, now)

    def _record(self, case: Case, stored: attachments.Stored, added_by: str,
                principal: access.Principal, now: datetime) -> dict:
        """Record AttachmentAdded for a stored file and mark its row, under the file's
        lock, which the sweep takes too: it never deletes a row being recorded."""
        refused = None
        view = self._view(case.id)  # before the lock: the pool's connections are few
        with self.db.transaction() as cursor:
            attachments.lock(cursor, stored.attachment_id)
            if attachments.row(cursor, stored.attachment_id) is None:
                raise HttpError(503, {"_": ["the file could not be recorded; send it again"]},
                                headers={"Retry-After": "1"})
            try:
                self.store.add_attachment(
                    case.id, stored.described(), added_by,
                    None if added_by == "citizen" else principal.office_id, lambda _: view,
                    self.limit.attachments, now)
            except CaseChanged as changed:
                refused = HttpError(409, {"status": [changed.message]})
                attachments.delete(cursor, stored.attachment_id)
            except NotAllowed as not_allowed:
                refused = refusal(not_allowed)
                attachments.delete(cursor, stored.attachment_id)
            else:
                attachments.mark_recorded(cursor, stored.attachment_id)
        if refused is not None:
            raise refused
        return stored.described()

    @endpoint("GET", "/v1/cases/{tracking_code}/attachments/{attachment_id}",
              allow=("citizen",), query=Variant, gone=_erased, produces=DOWNLOADS,
              errors={410: ERASED})
    def download_attachment(self, request, tracking_code, attachment_id, principal, query):
        """A file of the citizen's case, as it was kept (cleaned), or its thumbnail."""
        case = self._citizens_case(tracking_code, principal)
        listed = case.attachment(attachment_id)
        if listed is None:
            raise not_found("file")
        if case.personal_data_erased:
            raise HttpError(410, {"_": [ERASED]})
        files = self._files()
        stored = files.row(UUID(listed["attachment_id"]))
        chosen = stored.variant(query["variant"]) if stored is not None else None
        if chosen is None:
            raise not_found("file" if query["variant"] == "file" else "thumbnail")
        variant, media_type, count = chosen
        try:
            key = files.key(case.id)
            size = files.size(stored, variant, count)
        except attachments.Erased:
            raise HttpError(410, {"_": [ERASED]}) from None
        headers = download_headers(str(stored.attachment_id), media_type, size)
        return Response(files.stream(stored, variant, count, key), status=200,
                        direct_passthrough=True, headers=headers)

    @timer(interval=sweep_interval())
    def sweep_attachments(self):
        """Finish or delete the files a crash left stored but not marked recorded."""
        after = timedelta(seconds=settings().attachment_sweep_after)
        for stored in self._files().unrecorded(after):
            with self.db.transaction() as cursor:
                if not attachments.try_lock(cursor, stored.attachment_id):
                    continue  # being recorded right now
                current = attachments.row(cursor, stored.attachment_id)
                if current is None or current.recorded:
                    continue
                case = self.store.case_by_id(stored.case_id)
                if case is not None and case.attachment(str(stored.attachment_id)):
                    attachments.mark_recorded(cursor, stored.attachment_id)
                else:
                    attachments.delete(cursor, stored.attachment_id)


def _oversight(office_id: str | None) -> list[str]:
    """The office and every ombudsman above it, up to the national one."""
    found, current = [], office_id
    while current is not None and current not in found:
        found.append(current)
        current = ombudsman_above(current)
    return found
