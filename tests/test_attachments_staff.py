"""The citizen's files as the offices read them, through the real services: staff of
the case's office find each file's facts in the case file and download it through
routing, byte for byte what intake keeps (and the citizen reads back), with headers that
keep a browser from showing or caching it; another office's staff are refused, an
auditor reads the facts only, a sensitive case's files are its ombudsman's alone, and an
erased case's files are gone. In a headless browser, the console's case page shows a
photo's preview."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest
import requests

from tests.browser import open_browser
from tests.system import complaint, submit, wait_until
from tests.test_console import add_account, log_in, open_console, view

pytestmark = pytest.mark.e2e

OFFICE = "commune-120101"
OMBUDSMAN = "district-ombudsman-1201"


# -- files made here, small and valid -------------------------------------------------
def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def jpeg(width: int = 64, height: int = 48, comments: int = 0) -> bytes:
    """A baseline grey JPEG: one component, every 8x8 block its DC alone, coded with
    one-symbol Huffman tables (a 0 bit for the DC's zero difference, another for the
    end of the block); `comments` segments of 64,000 random bytes make it larger."""
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    bits = "00" * blocks
    bits += "1" * (-len(bits) % 8)
    scan = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    scan = scan.replace(b"\xff", b"\xff\x00")
    one_symbol = bytes([1] + [0] * 15) + b"\x00"
    return b"".join([
        b"\xff\xd8",
        _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        *(_segment(0xFE, os.urandom(64_000)) for _ in range(comments)),
        _segment(0xDB, b"\x00" + b"\x01" * 64),
        _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
        _segment(0xC4, b"\x00" + one_symbol),
        _segment(0xC4, b"\x10" + one_symbol),
        _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
        scan,
        b"\xff\xd9",
    ])


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
    photo = jpeg()
    added = upload(system, case, photo)
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

    if listed["thumbnail_url"]:
        preview = download(system, listed["thumbnail_url"], staff)
        assert preview.status_code == 200, preview.text
        assert preview.headers["Content-Type"] == "image/jpeg"
        assert preview.content == citizen_copy(system, case, added["attachment_id"],
                                               "thumbnail")

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


def test_a_file_of_many_parts_comes_whole_and_in_order(system):
    case = routed(system)
    added = upload(system, case, jpeg(comments=10))
    staff = system.principal("staff", OFFICE)
    [listed] = case_file(system, case, staff).json()["attachments"]
    got = download(system, listed["url"], staff)
    assert got.status_code == 200, got.text
    assert int(got.headers["Content-Length"]) == added["size"] == len(got.content)
    assert got.content == citizen_copy(system, case, added["attachment_id"])
    assert hashlib.sha256(got.content).hexdigest() == added["sha256"]


def test_a_sensitive_cases_files_are_its_ombudsmans_alone(system):
    case = routed(system, category="gender-based-violence")
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE case_id = %s AND office_id = %s",
        (case["case_id"], OMBUDSMAN)), what="the case at the ombudsman")
    added = upload(system, case, jpeg())
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
    added = upload(system, case, jpeg())
    erased = system.ourvoice("privacy", "erase", case["tracking_code"])
    assert erased.returncode == 0, erased.stderr
    staff = system.principal("staff", OFFICE)
    [listed] = case_file(system, case, staff).json()["attachments"]
    assert listed["erased"] is True and listed["attachment_id"] == added["attachment_id"]
    gone = download(system, listed["url"], staff)
    assert gone.status_code == 410, gone.text


def test_the_console_shows_a_photos_preview(system):
    case = routed(system)
    upload(system, case, jpeg())
    account = add_account(system, "bopha", "Sam Bopha", "staff", OFFICE)
    with open_browser() as page:
        open_console(page, system)
        log_in(page, "bopha", account["password"], new_password="ពាក្យសម្ងាត់ថ្មីរបស់បុប្ផា")
        open_console(page, system, f"#/cases/{case['case_id']}")
        view(page, "case")
        page.wait_for("!!document.querySelector('[data-part=attachments] [data-kind=photo]')",
                      what="the photo listed")
        if case_file(system, case, system.principal("staff", OFFICE)).json()[
                "attachments"][0]["thumbnail_url"]:
            page.wait_for("document.querySelector('[data-part=attachments] img.thumb')"
                          "?.naturalWidth > 0", what="the preview shown")
            assert page.evaluate("document.querySelector('img.thumb').src").startswith("blob:")
