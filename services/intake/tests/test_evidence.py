"""Evidence cleaning, on files made here: a phone's photo with its position and serial
number, a PDF with a script and an attachment, voice notes with their tags, and the
hostile ones (a bomb, polyglots, broken bytes)."""

import io
import random
import struct
import time
import tracemalloc
import zipfile
import zlib

import pytest
from PIL import Image, ImageChops, ImageStat, PngImagePlugin

from services.intake.evidence import THUMBNAIL_SIDE, Cleaned, Limits, Refused, clean

LIMITS = Limits(max_bytes=20 * 2**20, max_pixels=40_000_000, max_side=4096)

MAKE, MODEL, SERIAL = b"SecretMakeCo", b"SecretModel X9", b"SN-98765-ZYX"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
       b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" '
       b'dc:creator="Secret Photographer"/></rdf:RDF></x:xmpmeta>')


def run(data: bytes, limits: Limits = LIMITS) -> Cleaned:
    return clean(io.BytesIO(data), limits)


def refused(data: bytes, limits: Limits = LIMITS) -> Refused:
    with pytest.raises(Refused) as caught:
        run(data, limits)
    return caught.value


# --- Samples ---------------------------------------------------------------------------

def picture(width=96, height=48, mode="RGB") -> Image.Image:
    """A picture whose rotation shows: a gradient left to right, a bar at the top."""
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 255 // width, 60 if y < height // 4 else 200, 120)
                   for y in range(height) for x in range(width)])
    return image.convert(mode)


def tiff_ifd(entries, start, next_ifd=0):
    """One big-endian IFD at offset `start`: entries (tag, type, count, bytes), values
    longer than four bytes stored after it. Returns its bytes."""
    count = len(entries)
    data_at = start + 2 + 12 * count + 4
    head, tail = struct.pack(">H", count), b""
    for tag, kind, n, value in sorted(entries):
        if len(value) <= 4:
            head += struct.pack(">HHI", tag, kind, n) + value.ljust(4, b"\0")
        else:
            head += struct.pack(">HHII", tag, kind, n, data_at + len(tail))
            tail += value + (b"\0" if len(value) % 2 else b"")
    return head + struct.pack(">I", next_ifd) + tail


def ascii_entry(tag, text: bytes):
    return (tag, 2, len(text) + 1, text + b"\0")


def phone_exif() -> bytes:
    """EXIF as a phone writes it: make, model, orientation 6, date, serial number, maker
    notes, a GPS position and a thumbnail (IFD1), laid out by hand."""
    thumb = io.BytesIO()
    picture(32, 16).save(thumb, "JPEG")
    thumb = thumb.getvalue()
    rational = struct.pack(">II", 11, 1) + struct.pack(">II", 33, 1) + struct.pack(">II", 7, 1)
    gps = [ascii_entry(1, b"N")[:3] + (b"N\0",), (2, 5, 3, rational),
           (3, 2, 2, b"E\0"), (4, 5, 3, rational)]
    exif_ifd = [ascii_entry(0xA431, SERIAL), ascii_entry(0x9003, b"2026:01:02 03:04:05"),
                (0x927C, 7, 16, b"SecretMakerNote!")]

    def layout():
        # Offsets depend on sizes, so lay out twice: first with zero pointers.
        at = 8
        ifd0_entries = [ascii_entry(0x010F, MAKE), ascii_entry(0x0110, MODEL),
                        (0x0112, 3, 1, struct.pack(">H", 6)),
                        ascii_entry(0x0132, b"2026:01:02 03:04:05")]
        pointers = {"exif": 0, "gps": 0, "ifd1": 0, "thumb": 0}
        for _ in range(2):
            ifd0 = tiff_ifd(ifd0_entries + [(0x8769, 4, 1, struct.pack(">I", pointers["exif"])),
                                            (0x8825, 4, 1, struct.pack(">I", pointers["gps"]))],
                            at, pointers["ifd1"])
            pointers["exif"] = at + len(ifd0)
            exif_bytes = tiff_ifd(exif_ifd, pointers["exif"])
            pointers["gps"] = pointers["exif"] + len(exif_bytes)
            gps_bytes = tiff_ifd(gps, pointers["gps"])
            pointers["ifd1"] = pointers["gps"] + len(gps_bytes)
            ifd1 = tiff_ifd([(0x0201, 4, 1, struct.pack(">I", pointers["thumb"])),
                             (0x0202, 4, 1, struct.pack(">I", len(thumb)))], pointers["ifd1"])
            pointers["thumb"] = pointers["ifd1"] + len(ifd1)
        return b"MM\0\x2a" + struct.pack(">I", at) + ifd0 + exif_bytes + gps_bytes + ifd1 + thumb

    return b"Exif\0\0" + layout()


def phone_jpeg() -> bytes:
    out = io.BytesIO()
    picture().save(out, "JPEG", quality=95, exif=phone_exif(), xmp=XMP)
    return out.getvalue()


def png_with_metadata() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Secret Photographer")
    info.add_itxt("Comment", "taken at Secret Place", lang="en")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    out = io.BytesIO()
    picture(mode="RGBA").save(out, "PNG", pnginfo=info, exif=phone_exif()[6:])
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares width x height: rows of zeros,
    deflated (a real one would decompress to the whole declared size)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + 3 * min(width, 1000)) * 4, 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", rows)
            + png_chunk(b"IEND", b""))


def pdf_with_everything() -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import (
        ArrayObject,
        DictionaryObject,
        NameObject,
        NumberObject,
        StreamObject,
        TextStringObject,
    )
    writer = PdfWriter()
    page = writer.add_blank_page(200, 300)
    writer.add_attachment("secret.txt", b"SecretAttachedData")
    script = writer._add_object(DictionaryObject({
        NameObject("/S"): NameObject("/JavaScript"),
        NameObject("/JS"): TextStringObject("app.alert('SecretScript');")}))
    names = writer._root_object["/Names"].get_object()
    names[NameObject("/JavaScript")] = DictionaryObject({
        NameObject("/Names"): ArrayObject([TextStringObject("secret"), script])})
    writer.add_metadata({"/Author": "Secret Author", "/Title": "Secret Title",
                         "/Producer": "SecretProducer 1.0"})
    xmp = StreamObject()
    xmp.set_data(XMP)
    xmp.update({NameObject("/Type"): NameObject("/Metadata"),
                NameObject("/Subtype"): NameObject("/XML")})
    root = writer._root_object
    root[NameObject("/Metadata")] = writer._add_object(xmp)
    root[NameObject("/OpenAction")] = DictionaryObject({
        NameObject("/S"): NameObject("/JavaScript"),
        NameObject("/JS"): TextStringObject("app.alert('SecretOpen');")})
    page[NameObject("/AA")] = DictionaryObject({NameObject("/O"): DictionaryObject({
        NameObject("/S"): NameObject("/JavaScript"),
        NameObject("/JS"): TextStringObject("app.alert('SecretPage');")})})
    link = DictionaryObject({
        NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Link"),
        NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
        NameObject("/A"): DictionaryObject({
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject("app.alert('SecretLink');")})})
    embedded = StreamObject()
    embedded.set_data(b"SecretFileOnThePage")
    embedded[NameObject("/Type")] = NameObject("/EmbeddedFile")
    attached = DictionaryObject({
        NameObject("/Type"): NameObject("/Annot"),
        NameObject("/Subtype"): NameObject("/FileAttachment"),
        NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
        NameObject("/FS"): DictionaryObject({
            NameObject("/Type"): NameObject("/Filespec"), NameObject("/F"): TextStringObject("a"),
            NameObject("/EF"): DictionaryObject({NameObject("/F"): writer._add_object(embedded)})})})

    def uri_link(target):
        return writer._add_object(DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
            NameObject("/T"): TextStringObject("Secret Reviewer"),
            NameObject("/A"): DictionaryObject({NameObject("/S"): NameObject("/URI"),
                                                NameObject("/URI"): TextStringObject(target)})}))
    page[NameObject("/Annots")] = ArrayObject([
        writer._add_object(link), writer._add_object(attached),
        uri_link("https://example.org/report"), uri_link("javascript:alert('SecretUri')")])
    writer.add_blank_page(200, 300)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def mp3_frames(count=20) -> bytes:
    """MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: 417-byte frames of silence."""
    return (b"\xff\xfb\x90\x64" + b"\0" * 413) * count


def tagged_mp3() -> bytes:
    from mutagen.id3 import ID3, TDRC, TIT2, TPE1
    buffer = io.BytesIO(mp3_frames())
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Secret Title"))
    tags.add(TPE1(encoding=3, text="Secret Artist"))
    tags.add(TDRC(encoding=3, text="2026-01-02"))
    tags.save(buffer, v1=2)
    return buffer.getvalue()


def ogg_page(packets, sequence, position, first=False, last=False) -> bytes:
    from mutagen.ogg import OggPage
    page = OggPage()
    page.packets, page.serial, page.sequence, page.position = packets, 0x5EC2E7, sequence, position
    page.first, page.last = first, last
    return page.write()


def opus_comments(vendor: bytes, comments) -> bytes:
    body = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
    for comment in comments:
        body += struct.pack("<I", len(comment)) + comment
    return body


def tagged_opus() -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = opus_comments(b"SecretRecorder 4.2", [b"TITLE=Secret Title", b"ARTIST=Secret Artist",
                                                 b"DATE=2026-01-02", b"LOCATION=Secret Place"])
    silence = b"\xf8\xff\xfe"                    # one 20 ms Opus frame of silence
    return (ogg_page([head], 0, 0, first=True) + ogg_page([tags], 1, 0)
            + ogg_page([silence] * 50, 2, 48000, last=True))


def box(name: bytes, *children: bytes) -> bytes:
    body = b"".join(children)
    return struct.pack(">I", 8 + len(body)) + name + body


def full_box(name: bytes, version_flags: int, payload: bytes) -> bytes:
    return box(name, struct.pack(">I", version_flags) + payload)


def plain_m4a(handler=b"soun") -> bytes:
    """An M4A without tags: one sound track of four AAC samples (their bytes are not real
    sound, which no reader here looks at)."""
    samples = [b"\x21\x10\x04\x60\x8c\x1c"] * 4
    ftyp = box(b"ftyp", b"M4A \0\0\0\0M4A mp42isom")
    mvhd = full_box(b"mvhd", 0, struct.pack(">IIII", 0, 0, 44100, 4096) + b"\0" * 80)
    tkhd = full_box(b"tkhd", 7, struct.pack(">IIIII", 0, 0, 1, 0, 4096) + b"\0" * 60)
    mdhd = full_box(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, 44100, 4096, 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, b"\0\0\0\0" + handler + b"\0" * 12 + b"\0")
    esds = full_box(b"esds", 0, bytes.fromhex("03190000000411401500000000fa000000fa0000"
                                              "05021210060102"))
    mp4a = box(b"mp4a", b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 8
               + struct.pack(">HHHHI", 1, 16, 0, 0, 44100 << 16), esds)
    stsd = full_box(b"stsd", 0, struct.pack(">I", 1) + mp4a)
    stts = full_box(b"stts", 0, struct.pack(">III", 1, 4, 1024))
    stsc = full_box(b"stsc", 0, struct.pack(">IIII", 1, 1, 4, 1))
    stsz = full_box(b"stsz", 0, struct.pack(">II", 0, 4) + struct.pack(">I", 6) * 4)

    def build(chunk_at: int) -> bytes:
        stco = full_box(b"stco", 0, struct.pack(">II", 1, chunk_at))
        stbl = box(b"stbl", stsd, stts, stsc, stsz, stco)
        minf = box(b"minf", full_box(b"smhd", 0, b"\0" * 4),
                   box(b"dinf", full_box(b"dref", 0, struct.pack(">I", 1)
                                         + full_box(b"url ", 1, b""))), stbl)
        moov = box(b"moov", mvhd, box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf)))
        return ftyp + moov

    head = build(0)
    return build(len(head) + 8) + box(b"mdat", *samples)


def tagged_m4a() -> bytes:
    from mutagen.mp4 import MP4, MP4FreeForm
    buffer = io.BytesIO(plain_m4a())
    audio = MP4(buffer)
    audio.add_tags()
    audio.tags.update({"\xa9nam": ["Secret Title"], "\xa9ART": ["Secret Artist"],
                       "\xa9day": ["2026-01-02"], "\xa9too": ["SecretRecorder 4.2"],
                       "\xa9xyz": ["+11.5+104.9/"],
                       "----:com.apple.iTunes:secret": [MP4FreeForm(b"SecretFreeForm")]})
    buffer.seek(0)
    audio.save(buffer)
    return buffer.getvalue()


AMR = b"#!AMR\n" + (b"\x3c" + b"\x55" * 31) * 10


# --- Photos ----------------------------------------------------------------------------

def test_a_phone_photo_loses_its_position_device_and_date_and_is_turned_upright():
    original = phone_jpeg()
    assert MAKE in original and SERIAL in original and b"GPS" not in original
    with Image.open(io.BytesIO(original)) as check:   # the sample holds what a phone writes
        exif = check.getexif()
        assert exif[0x0112] == 6 and exif.get_ifd(0x8825) and exif.get_ifd(0x8769)[0xA431]
        assert exif.get_ifd(-1)[0x0202]            # IFD1: the embedded thumbnail
    cleaned = run(original)
    assert (cleaned.kind, cleaned.media_type) == ("photo", "image/jpeg")
    assert set(cleaned.removed) >= {
        "GPS position removed", "camera make and model removed", "camera serial number removed",
        "date taken removed", "EXIF metadata removed", "XMP metadata removed",
        "maker notes removed", "embedded thumbnail removed", "orientation applied"}
    for secret in (MAKE, MODEL, SERIAL, b"GPS", b"Exif", b"SecretMakerNote", b"Secret",
                   b"2026:01:02", b"xmpmeta"):
        assert secret not in cleaned.data
    with Image.open(io.BytesIO(cleaned.data)) as image:
        assert image.format == "JPEG" and not image.getexif()
        assert not ({"exif", "xmp", "icc_profile", "photoshop", "comment"} & set(image.info))
        assert image.size == (48, 96)                  # orientation 6: turned a quarter
        expected = picture().transpose(Image.Transpose.ROTATE_270)
        difference = ImageStat.Stat(ImageChops.difference(image.convert("RGB"), expected))
        assert max(difference.mean) < 6
    with Image.open(io.BytesIO(cleaned.thumbnail)) as thumbnail:
        assert cleaned.thumbnail_type == "image/jpeg" and thumbnail.format == "JPEG"
        assert thumbnail.size == (48, 96) and not thumbnail.getexif()


def test_a_large_photo_is_scaled_down_and_its_thumbnail_is_small():
    out = io.BytesIO()
    picture(1200, 600).save(out, "JPEG")
    cleaned = run(out.getvalue(), Limits(max_bytes=2**24, max_pixels=10**7, max_side=800))
    assert cleaned.removed == ("scaled down to 800 px",)
    with Image.open(io.BytesIO(cleaned.data)) as image:
        assert image.size == (800, 400)
    with Image.open(io.BytesIO(cleaned.thumbnail)) as thumbnail:
        assert max(thumbnail.size) == THUMBNAIL_SIDE


def test_a_png_loses_its_text_xmp_and_exif_chunks_and_keeps_its_transparency():
    original = png_with_metadata()
    assert b"eXIf" in original and b"tEXt" in original and b"iTXt" in original
    cleaned = run(original)
    assert cleaned.media_type == "image/png"
    assert {"EXIF metadata removed", "XMP metadata removed", "comments removed",
            "GPS position removed"} <= set(cleaned.removed)
    for chunk in (b"eXIf", b"tEXt", b"iTXt", b"zTXt", b"Secret", SERIAL):
        assert chunk not in cleaned.data
    with Image.open(io.BytesIO(cleaned.data)) as image:
        assert image.mode == "RGBA" and not image.text and not image.getexif()
        assert image.size == (48, 96)


def test_a_webp_loses_its_exif_and_xmp():
    out = io.BytesIO()
    picture().save(out, "WEBP", exif=phone_exif(), xmp=XMP)
    assert SERIAL in out.getvalue()
    cleaned = run(out.getvalue())
    assert cleaned.media_type == "image/webp"
    assert {"EXIF metadata removed", "XMP metadata removed"} <= set(cleaned.removed)
    assert SERIAL not in cleaned.data and b"EXIF" not in cleaned.data and b"XMP" not in cleaned.data
    with Image.open(io.BytesIO(cleaned.data)) as image:
        assert image.format == "WEBP" and not image.getexif() and "xmp" not in image.info


def test_a_heic_photo_becomes_a_jpeg_without_its_metadata():
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    try:
        picture().save(out, "HEIF", exif=phone_exif(), quality=90)
    except (OSError, KeyError, ValueError):
        pytest.skip("no HEIC encoder here")
    cleaned = run(out.getvalue())
    assert (cleaned.kind, cleaned.media_type) == ("photo", "image/jpeg")
    assert {"GPS position removed", "camera serial number removed",
            "orientation applied"} <= set(cleaned.removed)
    assert SERIAL not in cleaned.data and MAKE not in cleaned.data
    with Image.open(io.BytesIO(cleaned.data)) as image:
        assert image.format == "JPEG" and not image.getexif() and image.size == (48, 96)


def test_photos_of_every_mode_come_out_in_one_their_format_writes_without_a_profile():
    from PIL import ImageCms
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    made = [(picture().convert("CMYK"), "JPEG", {}, "RGB"),
            (picture(), "JPEG", {"icc_profile": srgb}, "RGB"),
            (picture().convert("P"), "PNG", {"transparency": 0}, "RGBA"),
            (picture().convert("LA"), "PNG", {}, "RGBA"),
            (Image.new("I;16", (40, 20), 30000), "PNG", {}, "L"),
            (picture(), "PNG", {"icc_profile": srgb}, "RGB")]
    for image, kind, options, mode in made:
        out = io.BytesIO()
        image.save(out, kind, **options)
        cleaned = run(out.getvalue())
        with Image.open(io.BytesIO(cleaned.data)) as result:
            assert (result.format, result.mode) == (kind, mode)
            assert "icc_profile" not in result.info
        assert ("colour profile removed" in cleaned.removed) == ("icc_profile" in options)


def test_a_decompression_bomb_is_refused_before_its_pixels_are_made():
    bomb = png_bomb(50_000, 50_000)
    assert len(bomb) < 10_000
    tracemalloc.start()
    started = time.monotonic()
    try:
        answer = refused(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.status == 413 and "pixels" in answer.message
    assert time.monotonic() - started < 2 and peak < 50 * 2**20
    # Just above the limit, below the point where Pillow itself would refuse it.
    assert refused(png_bomb(7000, 7000)).status == 413


def test_a_broken_photo_is_not_readable():
    data = phone_jpeg()
    answer = refused(data[: len(data) // 2])
    assert answer.status == 415 and "photo" in answer.message


# --- PDF -------------------------------------------------------------------------------

def test_a_pdf_loses_its_scripts_attachments_and_metadata():
    from pypdf import PdfReader
    original = pdf_with_everything()
    cleaned = run(original)
    assert (cleaned.kind, cleaned.media_type) == ("document", "application/pdf")
    assert {"JavaScript removed", "embedded files removed", "author removed",
            "document metadata removed", "XMP metadata removed"} <= set(cleaned.removed)
    reader = PdfReader(io.BytesIO(cleaned.data))
    root = reader.trailer["/Root"].get_object()
    assert len(reader.pages) == 2 and float(reader.pages[0].mediabox.height) == 300
    assert not reader.metadata and "/Info" not in reader.trailer
    for key in ("/Names", "/OpenAction", "/AA", "/Metadata", "/AcroForm"):
        assert key not in root
    page = reader.pages[0]
    assert "/AA" not in page
    links = [annotation.get_object() for annotation in page.get("/Annots", [])]
    assert all(link["/Subtype"] == "/Link" for link in links)
    assert [link["/A"]["/URI"] for link in links if "/A" in link] == ["https://example.org/report"]
    for secret in (b"Secret", b"JavaScript", b"EmbeddedFile", b"pypdf", b"xmpmeta"):
        assert secret not in cleaned.data


def test_a_pdf_that_is_also_an_archive_or_a_web_page_is_refused():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("index.html", "<script>alert(1)</script>")
    answer = refused(pdf_with_everything() + archive.getvalue())
    assert answer.status == 415 and "also another kind of file" in answer.message
    answer = refused(b"<html><script>alert(1)</script></html>\n" + pdf_with_everything())
    assert answer.status == 415 and "not a photo" in answer.message


def test_a_pdf_whose_bytes_hold_an_archive_signature_by_chance_is_taken():
    """Compressed streams hold any four bytes by chance; only an archive's directory at
    the end makes a file an archive to its readers."""
    from pypdf import PdfWriter
    from pypdf.generic import ContentStream
    writer = PdfWriter()
    page = writer.add_blank_page(100, 100)
    content = ContentStream(None, writer)
    content.set_data(b"% PK\x03\x04 PK\x01\x02 by chance\n0 0 m 10 10 l S\n")
    page.replace_contents(content)
    out = io.BytesIO()
    writer.write(out)
    assert b"PK\x03\x04" in out.getvalue()
    assert run(out.getvalue()).kind == "document"


def test_an_encrypted_pdf_and_one_of_too_many_pages_are_refused():
    from pypdf import PdfWriter
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    answer = refused(out.getvalue())
    assert answer.status == 415 and "password" in answer.message
    writer = PdfWriter()
    for _ in range(6):
        writer.add_blank_page(100, 100)
    out = io.BytesIO()
    writer.write(out)
    answer = refused(out.getvalue(), Limits(2**24, 10**7, 4096, max_pages=5))
    assert answer.status == 413 and "5 pages" in answer.message


# --- Voice notes -----------------------------------------------------------------------

def test_an_mp3_loses_its_id3_tags():
    from mutagen.id3 import ID3, ID3NoHeaderError
    from mutagen.mp3 import MP3
    original = tagged_mp3()
    assert b"Secret Artist" in original and original[-128:-125] == b"TAG"
    cleaned = run(original)
    assert (cleaned.kind, cleaned.media_type) == ("voice", "audio/mpeg")
    assert cleaned.removed == ("recording date removed", "tags removed")
    assert cleaned.data == mp3_frames() and b"Secret" not in cleaned.data
    with pytest.raises(ID3NoHeaderError):
        ID3(io.BytesIO(cleaned.data))
    assert MP3(io.BytesIO(cleaned.data)).info.length > 0
    assert run(mp3_frames()).removed == ()


def test_an_opus_voice_note_loses_its_comments_and_vendor():
    from mutagen.oggopus import OggOpus
    original = tagged_opus()
    assert OggOpus(io.BytesIO(original)).tags["ARTIST"] == ["Secret Artist"]
    cleaned = run(original)
    assert (cleaned.kind, cleaned.media_type) == ("voice", "audio/ogg")
    assert cleaned.removed == ("location removed", "recording date removed", "tags removed")
    audio = OggOpus(io.BytesIO(cleaned.data))
    assert not list(audio.tags.keys()) and not audio.tags.vendor
    assert b"Secret" not in cleaned.data and audio.info.length > 0


def test_a_vorbis_voice_note_loses_its_comments():
    from mutagen.oggvorbis import OggVorbis
    head = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 1, 44100, 0, 64000, 0, 0xB8, 1)
    comments = b"\x03vorbis" + opus_comments(b"SecretEncoder", [b"ARTIST=Secret Artist"])[8:] + b"\x01"
    setup = b"\x05vorbis" + b"\0" * 32             # not read by anyone here
    original = (ogg_page([head], 0, 0, first=True) + ogg_page([comments, setup], 1, 0)
                + ogg_page([b"\0" * 20] * 4, 2, 4096, last=True))
    assert OggVorbis(io.BytesIO(original)).tags["ARTIST"] == ["Secret Artist"]
    cleaned = run(original)
    assert (cleaned.media_type, cleaned.removed) == ("audio/ogg", ("tags removed",))
    audio = OggVorbis(io.BytesIO(cleaned.data))
    assert not list(audio.tags.keys()) and b"Secret" not in cleaned.data


def test_an_ogg_of_another_kind_is_refused():
    answer = refused(ogg_page([b"\x80theora" + b"\0" * 40], 0, 0, first=True))
    assert answer.status == 415 and "Opus" in answer.message


def test_an_m4a_voice_note_loses_its_atoms():
    from mutagen.mp4 import MP4
    original = tagged_m4a()
    assert b"Secret Artist" in original and b"SecretFreeForm" in original
    cleaned = run(original)
    assert (cleaned.kind, cleaned.media_type) == ("voice", "audio/mp4")
    assert cleaned.removed == ("location removed", "recording date removed", "tags removed")
    for secret in (b"Secret", b"\xa9ART", b"\xa9day", b"\xa9xyz", b"----", b"iTunes"):
        assert secret not in cleaned.data
    assert not MP4(io.BytesIO(cleaned.data)).tags
    assert run(plain_m4a()).removed == ()


def test_an_mp4_video_or_a_broken_m4a_is_refused():
    assert refused(plain_m4a(handler=b"vide")).status == 415
    data = tagged_m4a()
    assert refused(data[:40]).status == 415


def test_an_amr_voice_note_is_taken_as_it_is():
    cleaned = run(AMR)
    assert (cleaned.kind, cleaned.media_type, cleaned.data, cleaned.removed) == (
        "voice", "audio/amr", AMR, ())
    assert refused(AMR[:-3]).status == 415       # a frame cut short
    assert refused(b"#!AMR\n").status == 415


def test_an_adts_aac_loses_an_id3_tag():
    from mutagen.id3 import ID3, TIT2
    frame = bytearray(b"\xff\xf1\x50\x80\x00\x1f\xfc" + b"\0" * 9)
    frame[3:6] = bytes([0x80 | (len(frame) >> 11), (len(frame) >> 3) & 0xFF,
                        ((len(frame) & 7) << 5) | 0x1F])
    adts = bytes(frame) * 30
    buffer = io.BytesIO(adts)
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Secret Title"))
    tags.save(buffer)
    cleaned = run(buffer.getvalue())
    assert (cleaned.media_type, cleaned.data, cleaned.removed) == ("audio/aac", adts,
                                                                    ("tags removed",))


# --- Anything else ---------------------------------------------------------------------

def test_a_file_above_the_size_limit_is_refused_before_it_is_read():
    answer = refused(b"\xff\xd8\xff" + b"\0" * (2**20 + 1), Limits(2**20, 10**7, 4096))
    assert answer.status == 413 and "1 MB" in answer.message


@pytest.mark.parametrize("data", [b"", b"hello", b"GIF89a" + b"\0" * 40, b"MZ\x90\0",
                                  b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                                  b"PK\x03\x04" + b"\0" * 40, b"RIFF\0\0\0\0WAVEfmt "])
def test_a_file_of_another_kind_is_refused_with_what_is_taken(data):
    answer = refused(data)
    assert answer.status == 415
    assert "JPEG" in answer.message and "PDF" in answer.message and "MP3" in answer.message


def test_broken_versions_of_every_sample_are_cleaned_or_refused_never_an_error():
    """Truncated, bit-flipped, with bytes inserted or a length overwritten: a refusal or a
    clean file, never another exception, and never a tag that a damaged file hid."""
    samples = [phone_jpeg(), png_with_metadata(), pdf_with_everything(), tagged_mp3(),
               tagged_opus(), tagged_m4a(), AMR]
    webp = io.BytesIO()
    picture().save(webp, "WEBP", exif=phone_exif())
    samples.append(webp.getvalue())
    try:
        import pillow_heif
        pillow_heif.register_heif_opener()
        heic = io.BytesIO()
        picture().save(heic, "HEIF", exif=phone_exif())
        samples.append(heic.getvalue())
    except (ImportError, OSError, KeyError, ValueError):
        pass                                     # no HEIC here: the others are still tried
    chance = random.Random(20260101)
    tried = 0
    for sample in samples:
        for _ in range(120):
            data = bytearray(sample)
            way = chance.randrange(4)
            if way == 0:
                data = data[: chance.randrange(1, len(data))]
            elif way == 1:
                for _ in range(chance.randrange(1, 8)):
                    data[chance.randrange(len(data))] ^= 1 << chance.randrange(8)
            elif way == 2:
                at = chance.randrange(len(data))
                data[at:at] = bytes(chance.randrange(256) for _ in range(chance.randrange(1, 64)))
            else:
                at = chance.randrange(8, len(data))
                data[at: at + 4] = struct.pack(">I", chance.choice([0, 1, 2**31, 2**32 - 1]))
            try:
                result = run(bytes(data))
            except Refused as answer:
                assert answer.status in (413, 415) and answer.message
            else:
                assert isinstance(result, Cleaned) and result.data
                if sample is not AMR:                # broken or not, nothing of the tags is left
                    assert b"Secret" not in result.data and SERIAL not in result.data
            tried += 1
    assert tried >= 900
