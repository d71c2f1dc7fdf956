"""A case's files through the real services: uploaded by the citizen, the office the case
is with and the ombudsman above it, cleaned of what identifies, stored sealed in parts,
read back equal to what was kept; hostile files refused without a 5xx nor a swollen
process; limits, retries, erasure, and intake killed in the middle of uploads."""

import base64
import hashlib
import io
import json
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path
from uuid import UUID, uuid5

import pytest
import requests
from PIL import Image, ImageChops, ImageStat

from shared.tracking import case_id_for
from tests.system import ROOT, submit, wait_until
from tests.test_intake_privacy import probe

pytestmark = pytest.mark.e2e

MAX_BYTES = 3 * 1024 * 1024
SYSTEM_ENV = {
    "OURVOICE_ATTACHMENT_MAX_BYTES": str(MAX_BYTES),
    "OURVOICE_ATTACHMENTS_PER_DAY": "3",
    "OURVOICE_ATTACHMENT_SWEEP_AFTER": "2",
}
# intake's peak resident memory may grow by this much over the hostile files.
RSS_BOUND_KB = 200 * 1024
SERIAL = "SN-0042-TEST-SERIAL"
EVIDENCE_DATA = ROOT / "services" / "intake" / "tests" / "data"


# -- files -------------------------------------------------------------------------------
def photo(fmt: str = "JPEG", size=(640, 480), gps: bool = False, serial: bool = False) -> bytes:
    image = Image.radial_gradient("L").resize(size).convert("RGB")
    exif = Image.Exif()
    if gps:
        where = exif.get_ifd(0x8825)
        where.update({1: "N", 2: (11.0, 33.0, 22.0), 3: "E", 4: (104.0, 55.0, 1.0)})
    if serial:
        exif[0x0110] = "Phone X"
        exif.get_ifd(0x8769)[0xA431] = SERIAL
    out = io.BytesIO()
    image.save(out, fmt, **({"exif": exif.tobytes()} if gps or serial else {}))
    return out.getvalue()


def png_bomb(side: int = 30000) -> bytes:
    """A PNG of side x side grey pixels: under a megabyte sent, nearly a gigabyte decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    packer, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts))
            + chunk(b"IEND", b""))


def pdf() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(out, "PDF")
    return out.getvalue()


def pdf_and_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.exe", b"MZ" + b"\0" * 100)
    return pdf() + archive.getvalue()


def voice_notes() -> dict[str, bytes]:
    """The voice notes evidence cleaning is tested with (tags and all)."""
    from services.intake.tests import test_evidence as made

    return {"mp3": made.tagged_mp3(), "opus": made.tagged_opus(), "m4a": made.tagged_m4a(),
            "amr": made.AMR}


# -- calls ---------------------------------------------------------------------------------
def upload(system, case, data: bytes, token: str | None = None, *, multipart: bool = False,
           filename: str = "evidence.jpg", content_type: str = "image/jpeg",
           url: str | None = None, **headers) -> requests.Response:
    path = f"/v1/cases/{case['tracking_code']}/attachments"
    headers = {"Authorization": f"Bearer {token or case['citizen_token']}", **headers}
    target = (url or system.urls["intake"]) + path
    if multipart:
        return requests.post(target, files={"file": (filename, data, content_type)},
                             headers=headers, timeout=60)
    return requests.post(target, data=data, headers={"Content-Type": content_type, **headers},
                         timeout=60)


def download(system, case, attachment_id: str, variant: str | None = None,
             token: str | None = None) -> requests.Response:
    query = f"?variant={variant}" if variant else ""
    return system.call("GET", "intake",
                       f"/v1/cases/{case['tracking_code']}/attachments/{attachment_id}{query}",
                       token or case["citizen_token"])


def added_events(system, case_id) -> list[dict]:
    return [json.loads(bytes(r["state"])) for r in system.query(
        "SELECT state FROM intake_events WHERE originator_id = %s "
        "AND topic LIKE '%%AttachmentAdded' ORDER BY originator_version", (case_id,))]


def routed(system, case) -> None:
    wait_until(lambda: system.scalar("SELECT office_id FROM intake_case_view WHERE case_id = %s",
                                     (case["case_id"],)), what="intake's view knows the office")


def rss_peak_kb(system) -> int:
    status = Path(f"/proc/{system.processes['intake'].pid}/status").read_text()
    return int(next(line for line in status.splitlines()
                    if line.startswith("VmHWM:")).split()[1])


# -- the tests -------------------------------------------------------------------------------
def test_a_photo_is_kept_clean_and_read_back_as_kept(system):
    case = submit(system)
    sent = photo(gps=True, serial=True)
    assert SERIAL.encode() in sent
    with probe(system) as published:
        answer = upload(system, case, sent, multipart=True)
        # The public event says which, what kind and how large; nothing else.
        event = wait_until(lambda: [e for e in map(json.loads, published())
                                    if e["event_type"] == "AttachmentAdded"],
                           what="AttachmentAdded published")[0]
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored["kind"] == "photo" and stored["media_type"] == "image/jpeg"
    got = download(system, case, stored["attachment_id"])
    assert got.status_code == 200, got.text
    assert hashlib.sha256(got.content).hexdigest() == stored["sha256"]
    assert len(got.content) == stored["size"]
    assert got.headers["Content-Type"] == "image/jpeg"
    assert got.headers["Content-Disposition"] == \
        f'attachment; filename="{stored["attachment_id"]}.jpg"'
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Cache-Control"] == "private, no-store"
    # Nothing of where it was taken nor of the camera is left.
    assert SERIAL.encode() not in got.content
    kept = Image.open(io.BytesIO(got.content))
    assert not kept.getexif().get_ifd(0x8825)
    assert any("GPS" in fact for fact in stored["removed"]), stored["removed"]
    # The bytes at rest are sealed: not the file, nor any part of it.
    parts = system.query("SELECT sealed FROM intake_attachment_parts WHERE attachment_id = %s",
                         (stored["attachment_id"],))
    assert parts and all(bytes(p["sealed"])[12:40] not in got.content for p in parts)
    # The citizen's view lists it; the public event says which, what kind and how large.
    view = system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                       case["citizen_token"]).json()
    assert [a["attachment_id"] for a in view["attachments"]] == [stored["attachment_id"]]
    assert view["attachments"][0]["added_by"] == "citizen"
    assert event["data"] == {"attachment_id": stored["attachment_id"], "kind": "photo",
                             "size": stored["size"]}


def test_every_kind_taken_reads_back_as_kept(system):
    import pillow_heif  # a dependency of the project: HEIC is one of the kinds taken

    pillow_heif.register_heif_opener()
    files = {"jpeg": photo(), "png": photo("PNG"), "webp": photo("WEBP"), "heic": photo("HEIF"),
             "pdf": pdf(), **voice_notes()}
    case = submit(system)
    taken = {}
    for name, data in files.items():
        answer = upload(system, case, data, content_type="application/octet-stream")
        assert answer.status_code == 201, (name, answer.text)
        stored = answer.json()
        got = download(system, case, stored["attachment_id"])
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() \
            == stored["sha256"], name
        assert got.headers["Content-Type"] == stored["media_type"], name
        taken[name] = stored["kind"]
        if stored["kind"] == "photo":
            # The pixels are the photo's: the same size, the same picture (a lossless
            # PNG exactly, the others within what re-encoding changes).
            sent = Image.open(io.BytesIO(data)).convert("RGB")
            kept = Image.open(io.BytesIO(got.content)).convert("RGB")
            assert kept.size == sent.size, name
            difference = ImageChops.difference(sent, kept)
            mean = sum(ImageStat.Stat(difference).mean) / 3
            assert mean == 0 if name == "png" else mean < 4, (name, mean)
            thumbnail = download(system, case, stored["attachment_id"], "thumbnail")
            assert thumbnail.status_code == 200, thumbnail.text
            assert thumbnail.headers["Content-Type"] == "image/jpeg"
            assert max(Image.open(io.BytesIO(thumbnail.content)).size) <= 320
        else:
            assert download(system, case, stored["attachment_id"], "thumbnail").status_code \
                == 404
        # A new case for each 3 files: the per-day limit is 3 here.
        if len(taken) % 3 == 0:
            case = submit(system)
    assert taken == {name: "photo" if name in ("jpeg", "png", "webp", "heic") else
                     "document" if name == "pdf" else "voice" for name in files}


def test_hostile_files_are_refused_without_a_5xx_nor_a_swollen_intake(system):
    case = submit(system)
    before = rss_peak_kb(system)
    html = b"<html><body><script>alert(1)</script></body></html>"
    assert upload(system, case, html, multipart=True, filename="photo.jpg").status_code == 415
    assert upload(system, case, pdf_and_zip(), content_type="application/pdf").status_code == 415
    bomb = png_bomb()
    assert len(bomb) < MAX_BYTES
    answer = upload(system, case, bomb, multipart=True, filename="x.png",
                    content_type="image/png")
    assert answer.status_code == 413, answer.text
    assert rss_peak_kb(system) - before < RSS_BOUND_KB
    # Larger than taken: refused at once, whether its length is said or not.
    too_large = b"\xff\xd8\xff" + b"\0" * MAX_BYTES
    assert upload(system, case, too_large).status_code == 413

    def chunks():
        for _ in range(MAX_BYTES // 65536 + 2):
            yield b"\0" * 65536

    chunked = requests.post(system.url("intake", f"/v1/cases/{case['tracking_code']}/attachments"),
                            data=chunks(), headers={
                                "Authorization": f"Bearer {case['citizen_token']}"}, timeout=60)
    assert chunked.status_code == 413
    malformed = requests.post(
        system.url("intake", f"/v1/cases/{case['tracking_code']}/attachments"),
        data=b"--x\r\nnot a part", headers={"Authorization": f"Bearer {case['citizen_token']}",
                                            "Content-Type": "multipart/form-data; boundary=x"},
        timeout=30)
    assert malformed.status_code in (400, 415), malformed.text
    assert added_events(system, case["case_id"]) == []
    assert system.healthy("intake")


def test_a_retry_with_the_same_key_is_the_same_file_recorded_once_and_another_file_refused(system):
    case = submit(system)
    data = photo()
    first = upload(system, case, data, **{"Idempotency-Key": "photo-1"})
    again = upload(system, case, data, **{"Idempotency-Key": "photo-1"})
    assert first.status_code == again.status_code == 201, again.text
    assert first.json() == again.json()
    assert first.json()["attachment_id"] == str(uuid5(UUID(case["case_id"]), "attachment:photo-1"))
    other = upload(system, case, photo(size=(80, 40)), **{"Idempotency-Key": "photo-1"})
    assert other.status_code == 409, other.text
    assert "another file" in other.json()["errors"]["Idempotency-Key"][0]
    assert len(added_events(system, case["case_id"])) == 1


def test_limits_per_day_and_per_case(system):
    case = submit(system)
    for n in range(3):
        assert upload(system, case, photo(size=(64 + n, 64))).status_code == 201
    full_today = upload(system, case, photo())
    assert full_today.status_code == 429, full_today.text
    assert int(full_today.headers["Retry-After"]) > 0
    assert "3 files in 24 hours" in full_today.text
    with system.another("intake", "intake-small-cases", OURVOICE_ATTACHMENTS_PER_CASE="1",
                        OURVOICE_ATTACHMENTS_PER_DAY="10",
                        OURVOICE_ATTACHMENT_BYTES_PER_CASE="2048") as small:
        other = submit(system)
        too_many_bytes = upload(system, other, photo(size=(800, 800)), url=small)
        assert too_many_bytes.status_code == 413 and "2048 bytes" in too_many_bytes.text
        assert upload(system, other, photo(size=(16, 16)), url=small).status_code == 201
        full = upload(system, other, photo(size=(16, 16)), url=small)
        assert full.status_code == 413 and "at most 1 files" in full.text


def test_who_may_add_and_read(system):
    case, other = submit(system), submit(system)
    routed(system, case)
    data = photo()
    assert upload(system, case, data, other["citizen_token"]).status_code == 403
    assert upload(system, case, data, system.principal("staff", "commune-120109")).status_code \
        == 403
    assert upload(system, case, data, system.principal("auditor")).status_code == 403
    by_staff = upload(system, case, data, system.principal("staff", "commune-120101"))
    assert by_staff.status_code == 201, by_staff.text
    by_ombudsman = upload(system, case, photo(size=(32, 32)),
                          system.principal("ombudsman", "district-ombudsman-1201"))
    assert by_ombudsman.status_code == 201, by_ombudsman.text
    events = added_events(system, case["case_id"])
    assert [(e["added_by"], e["adder_office_id"]) for e in events] == [
        ("staff", "commune-120101"), ("ombudsman", "district-ombudsman-1201")]
    attachment_id = by_staff.json()["attachment_id"]
    assert download(system, case, attachment_id).status_code == 200
    assert download(system, case, attachment_id, token=other["citizen_token"]).status_code == 403
    assert download(system, case, "not-an-id").status_code == 404
    # Routing reads the file in parts over RPC, for readers it authenticated.
    part = system.rpc("routing", "intake", "attachment_part", case["case_id"], attachment_id,
                      "file", 0, "staff")
    assert base64.b64decode(part["data"]) == download(system, case, attachment_id).content
    assert system.rpc("routing", "intake", "attachment_part", case["case_id"], attachment_id,
                      "file", 0, "auditor")["refused"]
    listed = system.rpc("routing", "intake", "case_file", case["case_id"], "staff")
    assert [a["attachment_id"] for a in listed["attachments"]] == [
        attachment_id, by_ombudsman.json()["attachment_id"]]


def test_erasure_destroys_the_files_and_the_history_still_verifies(system):
    case = submit(system)  # anonymous: the files are its only personal data
    stored = upload(system, case, photo()).json()
    done = system.ourvoice("privacy", "erase", case["tracking_code"])
    assert "erased" in done.stdout, done.stdout
    assert system.scalar("SELECT count(*) FROM intake_attachment_parts WHERE attachment_id = %s",
                         (stored["attachment_id"],)) == 0
    assert download(system, case, stored["attachment_id"]).status_code == 410
    assert system.rpc("routing", "intake", "attachment_part", case["case_id"],
                      stored["attachment_id"], "file", 0, "ombudsman") == {"refused": "erased"}
    listed = system.rpc("routing", "intake", "case_file", case["case_id"], "staff")
    assert listed["attachments"][0]["erased"] is True
    assert listed["personal_data"] == "erased"
    wait_until(system.settled, timeout=60, what="every event reached reporting")
    verified = system.ourvoice("audit", "verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_intake_killed_in_the_middle_of_uploads_leaves_no_file_half_kept(system):
    cases = [submit(system) for _ in range(4)]
    answers: list = []

    def slow_body():
        yield b"\xff\xd8\xff"
        for _ in range(200):
            time.sleep(0.05)
            yield b"\0" * 4096

    def send(case, n):
        try:
            answers.append(upload(system, case, photo(size=(900 + n, 700))).status_code)
        except requests.RequestException:
            answers.append("cut")

    def send_slowly(case):
        try:
            answers.append(requests.post(
                system.url("intake", f"/v1/cases/{case['tracking_code']}/attachments"),
                data=slow_body(), headers={"Authorization": f"Bearer {case['citizen_token']}"},
                timeout=60).status_code)
        except requests.RequestException:
            answers.append("cut")

    threads = [threading.Thread(target=send, args=(cases[n % 3], n)) for n in range(9)]
    threads.append(threading.Thread(target=send_slowly, args=(cases[3],)))
    for thread in threads:
        thread.start()
    time.sleep(0.4)
    system.kill("intake")
    for thread in threads:
        thread.join(timeout=60)
    system.start("intake")
    time.sleep(float(SYSTEM_ENV["OURVOICE_ATTACHMENT_SWEEP_AFTER"]) + 3)
    wait_until(lambda: system.scalar("SELECT count(*) FROM intake_attachments WHERE NOT recorded")
               == 0, timeout=30, what="the sweep finished or deleted every unrecorded file")
    for case in cases:
        for event in added_events(system, case["case_id"]):
            row = system.query("SELECT * FROM intake_attachments WHERE attachment_id = %s",
                               (event["attachment_id"],))
            assert row and row[0]["recorded"], event
            counts = {r["variant"]: r["n"] for r in system.query(
                "SELECT variant, count(*) AS n FROM intake_attachment_parts "
                "WHERE attachment_id = %s GROUP BY variant", (event["attachment_id"],))}
            assert counts.get(0) == row[0]["parts"]
            assert counts.get(1, 0) == (row[0]["thumbnail_parts"] or 0)
            got = download(system, case, event["attachment_id"])
            assert hashlib.sha256(got.content).hexdigest() == event["sha256"]
    # No part without its row, nor a row of a file no event recorded.
    assert system.scalar(
        "SELECT count(*) FROM intake_attachment_parts p LEFT JOIN intake_attachments a "
        "USING (attachment_id) WHERE a.attachment_id IS NULL") == 0
    recorded = {e["attachment_id"] for case in cases for e in added_events(system, case["case_id"])}
    rows = {str(r["attachment_id"]) for r in system.query(
        "SELECT attachment_id FROM intake_attachments WHERE case_id = ANY(%s)",
        ([UUID(c["case_id"]) for c in cases],))}
    assert rows == recorded
    # And uploads go on after the restart.
    assert upload(system, cases[3], photo()).status_code == 201


def test_open311_takes_a_media_url_as_a_reference_and_shows_files_as_references(system):
    from tests.test_intake_open311 import described, new_request, post

    key = "open311-development-key"  # the only one while OURVOICE_OPEN311_KEYS is unset
    for wrong in ("javascript:alert(1)", "ftp://example.org/p.jpg", "not a url"):
        refused = post(system, **new_request(api_key=key, media_url=wrong))
        assert refused.status_code == 400, wrong
        assert [d for d in described(refused) if d.startswith("media_url: ")], refused.text
    posted = post(system, **new_request(api_key=key,
                                        media_url="https://photos.example.org/tap.jpg"))
    assert posted.status_code == 201, posted.text
    created = posted.json()[0]
    case = {"tracking_code": created["service_request_id"],
            "citizen_token": created["citizen_token"]}
    case["case_id"] = str(case_id_for(case["tracking_code"]))
    listed = system.rpc("routing", "intake", "case_file", str(case["case_id"]), "staff")
    assert listed["media_urls"] == ["https://photos.example.org/tap.jpg"]
    stored = upload(system, case, photo()).json()
    read = requests.get(system.url(
        "intake", f"/open311/v2/requests/{case['tracking_code']}.json"), timeout=10).json()[0]
    assert read["media_url"] is None
    assert read["attachments"] == [{"attachment_id": stored["attachment_id"], "kind": "photo",
                                    "size": stored["size"]}]
    assert "/attachments/" not in json.dumps(read)


def test_a_sensitive_case_s_files_are_the_ombudsman_s(system):
    from tests.system import complaint

    case = submit(system, complaint(category="gender-based-violence", language="en",
                                    description="What happened at the office."))
    routed(system, case)
    assert system.scalar("SELECT office_id FROM intake_case_view WHERE case_id = %s",
                         (case["case_id"],)) == "district-ombudsman-1201"
    # Staff of the commune office below the ombudsman may not add to it, nor read it.
    assert upload(system, case, photo(), system.principal("staff", "commune-120101")) \
        .status_code == 403
    stored = upload(system, case, photo(),
                    system.principal("ombudsman", "district-ombudsman-1201"))
    assert stored.status_code == 201, stored.text
    attachment_id = stored.json()["attachment_id"]
    assert system.rpc("routing", "intake", "attachment_part", case["case_id"], attachment_id,
                      "file", 0, "staff")["refused"]
    part = system.rpc("routing", "intake", "attachment_part", case["case_id"], attachment_id,
                      "file", 0, "ombudsman")
    assert part["media_type"] == "image/jpeg" and part["parts"] >= 1
    # Its metadata is in the case file for every reader; the citizen reads the file.
    listed = system.rpc("routing", "intake", "case_file", case["case_id"], "staff")
    assert [a["kind"] for a in listed["attachments"]] == ["photo"]
    assert download(system, case, attachment_id).status_code == 200
