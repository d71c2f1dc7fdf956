"""The citizen's files as the offices read them, through the real services: staff of
the case's office find each file's facts in the case file and download it through
routing, byte for byte what intake keeps (and the citizen reads back), with headers that
keep a browser from showing or caching it; another office's staff are refused, an
auditor reads the facts only, a sensitive case's files are its ombudsman's alone, and an
erased case's files are gone. In a headless browser, the console's case page shows a
photo's preview."""

from __future__ import annotations

import hashlib
import io

import pytest
import requests
from PIL import Image

from tests.browser import open_browser
from tests.system import complaint, submit, wait_until
from tests.test_console import add_account, log_in, open_console, view

pytestmark = pytest.mark.e2e

OFFICE = "commune-120101"
OMBUDSMAN = "district-ombudsman-1201"


# -- files made here, small and valid -------------------------------------------------
def photo(size=(640, 480), noise: bool = False) -> bytes:
    """A JPEG as a phone's camera makes one, with the place it was taken in its EXIF;
    `noise` makes it large (noise compresses badly): many parts once cleaned."""
    if noise:
        image = Image.merge("RGB", [Image.effect_noise(size, 90) for _ in range(3)])
    else:
        image = Image.radial_gradient("L").resize(size).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: (11.0, 33.0, 22.0), 3: "E", 4: (104.0, 55.0, 1.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def mp3(frames: int = 80) -> bytes:
    """About two seconds of silence: MPEG-1 layer III frames, 128 kbit/s at 44.1 kHz, mono,
    each 417 bytes (its header, then side information and data all zero)."""
    return (b"\xff\xfb\x90\xc0" + bytes(413)) * frames


def pdf() -> bytes:
    """A one-page PDF with nothing on it, its cross-reference table exact."""
    objects = [b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
               b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]/Resources<<>>>>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


# -- the system -----------------------------------------------------------------------
def routed(system, **overrides) -> dict:
    case = submit(system, complaint(**overrides))
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s",
        (case["tracking_code"],)), what="case routed")
    return case


def upload(system, case: dict, data: bytes, content_type: str = "image/jpeg") -> dict:
    """The citizen sends a file as a phone's app does: the body is the file itself."""
    response = requests.post(
        system.url("intake", f"/v1/cases/{case['tracking_code']}/attachments"), data=data,
        timeout=30, headers={"Authorization": f"Bearer {case['citizen_token']}",
                             "Content-Type": content_type})
    assert response.status_code == 201, response.text
    return response.json()


def case_file(system, case: dict, token: str):
    return system.call("GET", "routing", f"/v1/cases/{case['case_id']}", token)


def download(system, url: str, token: str):
    return system.call("GET", "routing", url, token)


def citizen_copy(system, case: dict, attachment_id: str, variant: str = "file") -> bytes:
    response = system.call("GET", "intake",
                           f"/v1/cases/{case['tracking_code']}/attachments/{attachment_id}",
                           case["citizen_token"],
                           params={"variant": variant} if variant != "file" else None)
    assert response.status_code == 200, response.text
    return response.content


def openings(file: dict) -> int:
    return sum(entry["event_type"] == "CaseFileOpened" for entry in file["timeline"])


def test_the_office_reads_the_files_facts_and_downloads_them_through_routing(system):
    case = routed(system)
    image = photo()
    added = upload(system, case, image)
    staff = system.principal("staff", OFFICE)
    response = case_file(system, case, staff)
    assert response.status_code == 200, response.text
    [listed] = response.json()["attachments"]
    sha = added["sha256"]
    assert listed == {
        "attachment_id": added["attachment_id"], "kind": "photo", "media_type": "image/jpeg",
        "size": added["size"], "sha256": sha, "removed": added["removed"],
        "added_by": "citizen", "at": listed["at"], "erased": False,
        "url": f"/v1/cases/{case['tracking_code']}/attachments/{added['attachment_id']}",
        "thumbnail_url": listed["thumbnail_url"]}
    before = openings(response.json())

    got = download(system, listed["url"], staff)
    assert got.status_code == 200, got.text
    assert got.content == citizen_copy(system, case, added["attachment_id"])
    assert hashlib.sha256(got.content).hexdigest() == sha
    assert got.headers["Content-Type"] == "image/jpeg"
    assert got.headers["Content-Disposition"] == \
        f'attachment; filename="{added["attachment_id"]}.jpg"'
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Cache-Control"] == "private, no-store"
    assert got.headers["Content-Length"] == str(added["size"])
    # The download is a reading of the case file, on record as one.
    assert openings(case_file(system, case, staff).json()) == before + 2

    assert "GPS position removed" in listed["removed"]
    assert listed["thumbnail_url"] == listed["url"] + "?variant=thumbnail"
    preview = download(system, listed["thumbnail_url"], staff)
    assert preview.status_code == 200, preview.text
    assert preview.headers["Content-Type"] == "image/jpeg"
    assert preview.content == citizen_copy(system, case, added["attachment_id"], "thumbnail")
    assert int(preview.headers["Content-Length"]) == len(preview.content) < len(got.content)
    assert Image.open(io.BytesIO(preview.content)).size == (320, 240)
    # The preview is what the case page shows: no reading of its own.
    assert openings(case_file(system, case, staff).json()) == before + 3

    # Another office reads neither; an auditor reads the facts, never the file.
    other = system.principal("staff", "commune-120109")
    assert case_file(system, case, other).status_code == 403
    assert download(system, listed["url"], other).status_code == 403
    auditor = system.principal("auditor")
    audited = case_file(system, case, auditor)
    assert audited.status_code == 200 and audited.json()["attachments"] == [
        {**listed, "at": audited.json()["attachments"][0]["at"]}]
    refused = download(system, listed["url"], auditor)
    assert refused.status_code == 403
    assert refused.json()["errors"] == {
        "Authorization": ["auditors read the attachments' metadata only"]}
    unknown = listed["url"].rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    assert download(system, unknown, staff).status_code == 404


@pytest.mark.parametrize(("kind", "made", "media_type", "extension"), [
    ("voice", mp3, "audio/mpeg", "mp3"), ("document", pdf, "application/pdf", "pdf")])
def test_a_voice_note_and_a_pdf_come_with_their_own_type_and_no_preview(
        system, kind, made, media_type, extension):
    case = routed(system)
    added = upload(system, case, made(), "application/octet-stream")
    staff = system.principal("staff", OFFICE)
    [listed] = case_file(system, case, staff).json()["attachments"]
    assert (listed["kind"], listed["media_type"], listed["thumbnail_url"]) == (
        kind, media_type, None)
    got = download(system, listed["url"], staff)
    assert got.status_code == 200, got.text
    assert got.content == citizen_copy(system, case, added["attachment_id"])
    assert got.headers["Content-Type"] == media_type
    assert got.headers["Content-Disposition"] == \
        f'attachment; filename="{added["attachment_id"]}.{extension}"'
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Cache-Control"] == "private, no-store"
    no_preview = download(system, listed["url"] + "?variant=thumbnail", staff)
    assert no_preview.status_code == 404
    assert download(system, listed["url"], system.principal("auditor")).status_code == 403


def test_a_file_of_many_parts_comes_whole_and_in_order(system):
    case = routed(system)
    added = upload(system, case, photo((1200, 900), noise=True))
    staff = system.principal("staff", OFFICE)
    [listed] = case_file(system, case, staff).json()["attachments"]
    got = download(system, listed["url"], staff)
    assert got.status_code == 200, got.text
    assert int(got.headers["Content-Length"]) == added["size"] == len(got.content)
    assert added["size"] > 3 * 256 * 1024, "more than three parts of 256 KiB"
    assert got.content == citizen_copy(system, case, added["attachment_id"])
    assert hashlib.sha256(got.content).hexdigest() == added["sha256"]


def test_a_sensitive_cases_files_are_its_ombudsmans_alone(system):
    case = routed(system, category="gender-based-violence")
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE case_id = %s AND office_id = %s",
        (case["case_id"], OMBUDSMAN)), what="the case at the ombudsman")
    added = upload(system, case, photo())
    staff = system.principal("staff", OMBUDSMAN)
    seen = case_file(system, case, staff)
    assert seen.status_code == 200, seen.text
    [listed] = seen.json()["attachments"]
    assert listed["attachment_id"] == added["attachment_id"]
    refused = download(system, listed["url"], staff)
    assert refused.status_code == 403
    assert refused.json()["errors"] == {"Authorization": ["only the ombudsman opens this file"]}
    ombudsman = system.principal("ombudsman", OMBUDSMAN)
    got = download(system, listed["url"], ombudsman)
    assert got.status_code == 200, got.text
    assert got.content == citizen_copy(system, case, added["attachment_id"])


def test_an_erased_cases_files_are_gone(system):
    case = routed(system)
    added = upload(system, case, photo())
    erased = system.ourvoice("privacy", "erase", case["tracking_code"])
    assert erased.returncode == 0, erased.stderr
    staff = system.principal("staff", OFFICE)
    [listed] = case_file(system, case, staff).json()["attachments"]
    assert listed["erased"] is True and listed["attachment_id"] == added["attachment_id"]
    gone = download(system, listed["url"], staff)
    assert gone.status_code == 410, gone.text


def test_the_console_shows_a_photos_preview_a_voice_notes_player_and_a_pdfs_download(system):
    case = routed(system)
    for data in (photo(), mp3(), pdf()):
        upload(system, case, data, "application/octet-stream")
    account = add_account(system, "bopha", "Sam Bopha", "staff", OFFICE)
    files = "[data-part=attachments]"
    with open_browser() as page:
        open_console(page, system)
        log_in(page, "bopha", account["password"], new_password="ពាក្យសម្ងាត់ថ្មីរបស់បុប្ផា")
        open_console(page, system, f"#/cases/{case['case_id']}")
        view(page, "case")
        page.wait_for(f"document.querySelector('{files} img.thumb')?.naturalWidth > 0",
                      what="the photo's preview shown")
        assert page.evaluate(f"document.querySelector('{files} img.thumb').src") \
            .startswith("blob:")
        assert page.evaluate(f"document.querySelectorAll('{files} [data-kind]').length") == 3
        assert page.evaluate(f"!!document.querySelector('{files} [data-kind=voice] audio"
                             "[controls]')")
        assert page.evaluate(f"!!document.querySelector('{files} [data-kind=document] "
                             "button')")
        # The voice note is fetched when asked for, and played from a blob: URL.
        page.evaluate(f"document.querySelector('{files} [data-kind=voice] button').click()")
        page.wait_for(f"document.querySelector('{files} audio').src.startsWith('blob:') && "
                      f"document.querySelector('{files} audio').readyState >= 1",
                      what="the voice note loaded in its player")
        assert page.evaluate(f"document.querySelector('{files} audio').duration") > 1
