"""What a citizen's (or an office's) file may be and what is left of it once cleaned:
recognised by its content, never by its name or declared type, then re-made without
anything that identifies (metadata, positions, serial numbers, embedded thumbnails) and
without anything active (a PDF's scripts, embedded files).

Pure: bytes in, bytes out, no I/O. What was removed is said as a fact, never its value.
Every reader below parses bytes an attacker chose, so anything but Refused that one of
them raises is turned into a 415: a hostile file is a refusal, never a server error."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import BinaryIO

KINDS = ("photo", "document", "voice")


class Refused(Exception):
    """A file that is not taken: `status` is the HTTP answer (413 too large, 415 not a
    kind we take or not a sound file of it), `message` says why in the user's words."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_bytes: int            # the largest file taken, as sent
    max_pixels: int           # a photo's largest pixel count (a bomb is refused before decoding)
    max_side: int             # a photo's longest side once cleaned (larger is scaled down)
    max_pages: int = 500      # a PDF's most pages (each is re-made, so this bounds the work)


@dataclass(frozen=True)
class Cleaned:
    kind: str                 # one of KINDS
    media_type: str           # of `data`: image/jpeg, image/png, image/webp, application/pdf, audio/...
    data: bytes               # the cleaned file
    removed: tuple[str, ...]  # facts, e.g. ("GPS position removed", "camera serial number removed")
    thumbnail: bytes | None = None        # a photo's small JPEG (longest side THUMBNAIL_SIDE)
    thumbnail_type: str | None = None


THUMBNAIL_SIDE = 320

# The file name's extension a download is given, by the cleaned file's media type.
EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp",
    "application/pdf": "pdf",
    "audio/mp4": "m4a", "audio/aac": "aac", "audio/ogg": "ogg", "audio/amr": "amr",
    "audio/amr-wb": "awb", "audio/mpeg": "mp3",
}

WHAT_IS_TAKEN = ("this file is not a photo (JPEG, PNG, WebP, HEIC), a PDF or a voice note "
                 "(M4A, AAC, Ogg/Opus or Vorbis, AMR, MP3)")
NOT_A_PHOTO = "this file is not a readable photo"
NOT_A_PDF = "this file is not a readable PDF"
NOT_A_VOICE_NOTE = "this file is not a readable voice note"


def extension(media_type: str) -> str:
    return EXTENSIONS.get(media_type, "bin")


def clean(source: BinaryIO, limits: Limits) -> Cleaned:
    """The cleaned file, or Refused. `source` is seekable and holds the whole upload."""
    source.seek(0, io.SEEK_END)
    size = source.tell()
    if size > limits.max_bytes:
        raise Refused(413, f"this file is larger than {limits.max_bytes / 2**20:g} MB, "
                           f"the most taken")
    source.seek(0)
    data = source.read()
    what = recognise(data)
    if what is None:
        raise Refused(415, WHAT_IS_TAKEN)
    kind, form = what
    cleaner, unreadable = {
        "photo": (_clean_photo, NOT_A_PHOTO),
        "document": (_clean_pdf, NOT_A_PDF),
        "voice": (_clean_voice, NOT_A_VOICE_NOTE),
    }[kind]
    try:
        with warnings.catch_warnings():
            # Readers warn of what they skip in a broken file; what they return is checked.
            warnings.simplefilter("ignore")
            return cleaner(form, data, limits)
    except Refused:
        raise
    except Exception as error:  # noqa: BLE001 - any parser's failure on hostile bytes
        raise Refused(415, unreadable) from error


# --- Recognising -----------------------------------------------------------------------

HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
AUDIO_MP4_BRANDS = {b"M4A ", b"M4B ", b"mp42", b"isom"}


def recognise(data: bytes) -> tuple[str, str] | None:
    """(kind, form) from the first bytes, or None: the form is only a guess until its
    reader has parsed the whole file."""
    if data.startswith(b"\xff\xd8\xff"):
        return "photo", "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "photo", "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "photo", "webp"
    if data.startswith(b"%PDF-"):
        return "document", "pdf"
    brands = _ftyp_brands(data)
    if brands:
        if brands & HEIC_BRANDS:
            return "photo", "heic"
        if brands & AUDIO_MP4_BRANDS or any(b.startswith(b"3gp") for b in brands):
            return "voice", "mp4"
        return None
    if data.startswith(b"OggS"):
        return "voice", "ogg"
    if data.startswith(b"#!AMR"):
        return "voice", "amr"
    body = data[_id3v2_length(data):]
    if len(body) >= 2 and body[0] == 0xFF:
        if body[1] & 0xF6 == 0xF0:               # sync, layer 00: AAC's ADTS
            return "voice", "adts"
        if body[1] & 0xE0 == 0xE0 and body[1] & 0x06:
            return "voice", "mp3"                # sync, layer I-III: MPEG audio
    return None


def _ftyp_brands(data: bytes) -> set[bytes]:
    if data[4:8] != b"ftyp" or len(data) < 16:
        return set()
    size = struct.unpack(">I", data[:4])[0]
    if size < 16 or size > min(len(data), 4096):
        return set()
    brands = {data[8:12]}
    brands.update(data[i:i + 4] for i in range(16, size - 3, 4))
    return brands


def _id3v2_length(data: bytes) -> int:
    """How many bytes an ID3v2 tag at the start takes (0 without one)."""
    if len(data) < 10 or not data.startswith(b"ID3"):
        return 0
    raw = data[6:10]
    if any(b & 0x80 for b in raw):
        return 0
    length = 10 + (raw[0] << 21 | raw[1] << 14 | raw[2] << 7 | raw[3])
    if data[5] & 0x10:                           # a footer follows the tag
        length += 10
    return length


# --- Photos ----------------------------------------------------------------------------

_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "heic": "HEIF"}
_SAVED_AS = {"jpeg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"),
             "webp": ("WEBP", "image/webp"), "heic": ("JPEG", "image/jpeg")}

# EXIF tags (base IFD, the Exif IFD, the GPS IFD) whose presence is said as a fact.
GPS_IFD, EXIF_IFD, IFD1 = 0x8825, 0x8769, -1
MAKE, MODEL, ORIENTATION, DATE_TIME = 0x010F, 0x0110, 0x0112, 0x0132
DATE_ORIGINAL, DATE_DIGITIZED, MAKER_NOTE = 0x9003, 0x9004, 0x927C
SERIALS = (0xA431, 0xA435, 0xC62F)               # body, lens, DNG camera serial number
LENS_MAKE, LENS_MODEL = 0xA433, 0xA434


def _imaging():
    from PIL import Image
    try:
        import pillow_heif
        pillow_heif.register_heif_opener()
    except ImportError:                          # HEIC is then refused as unreadable
        pass
    return Image


def _clean_photo(form: str, data: bytes, limits: Limits) -> Cleaned:
    Image = _imaging()
    from PIL import ImageOps

    # Image.open reads the header only; Pillow's own bomb check stays as a second guard
    # (it raises above twice the limit, before anything is decoded).
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    too_large = Refused(413, f"this photo is too large: more than "
                             f"{limits.max_pixels / 1e6:g} million pixels")
    try:
        image = Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[form]])
    except Image.DecompressionBombError:
        raise too_large from None
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > limits.max_pixels:
        raise too_large
    removed = _photo_facts(image)
    if getattr(image, "n_frames", 1) > 1:
        removed.append("other frames removed")  # an animation or a phone's depth image
    image.load()

    oriented = ImageOps.exif_transpose(image)
    if image.getexif().get(ORIENTATION, 1) not in (0, 1):
        removed.append("orientation applied")
    pixels = _plain_pixels(oriented, form)
    longest = max(pixels.size)
    if longest > limits.max_side:
        pixels.thumbnail((limits.max_side, limits.max_side), Image.Resampling.LANCZOS)
        removed.append(f"scaled down to {max(pixels.size)} px")
    pixels.info.clear()                          # nothing of the original is written back

    pil_format, media_type = _SAVED_AS[form]
    out = io.BytesIO()
    if pil_format == "JPEG":
        pixels.save(out, "JPEG", quality=90, optimize=True)
    elif pil_format == "WEBP":
        pixels.save(out, "WEBP", quality=90)
    else:
        pixels.save(out, "PNG", optimize=True)
    return Cleaned("photo", media_type, out.getvalue(), _ordered(removed),
                   thumbnail=_thumbnail(pixels), thumbnail_type="image/jpeg")


def _photo_facts(image) -> list[str]:
    """What the original holds that identifies a person, a place or a device."""
    facts: list[str] = []
    info = image.info
    exif = image.getexif()
    if exif or info.get("exif"):
        exif_ifd = _ifd(exif, EXIF_IFD)
        gps = _ifd(exif, GPS_IFD)
        if gps or GPS_IFD in exif:
            facts.append("GPS position removed")
        if {MAKE, MODEL} & set(exif) or {LENS_MAKE, LENS_MODEL} & set(exif_ifd):
            facts.append("camera make and model removed")
        if any(tag in exif or tag in exif_ifd for tag in SERIALS):
            facts.append("camera serial number removed")
        if DATE_TIME in exif or {DATE_ORIGINAL, DATE_DIGITIZED} & set(exif_ifd):
            facts.append("date taken removed")
        if MAKER_NOTE in exif_ifd:
            facts.append("maker notes removed")
        if _ifd(exif, IFD1) or b"\xff\xd8\xff" in (info.get("exif") or b"")[6:]:
            facts.append("embedded thumbnail removed")
        facts.append("EXIF metadata removed")
    if info.get("xmp") or info.get("XML:com.adobe.xmp"):
        facts.append("XMP metadata removed")
    if info.get("photoshop") or any("iptc" in str(key).lower() for key in info):
        facts.append("IPTC metadata removed")
    if info.get("icc_profile"):
        facts.append("colour profile removed")
    text = getattr(image, "text", None) if image.format == "PNG" else None
    if text and set(text) - {"XML:com.adobe.xmp"} or info.get("comment"):
        facts.append("comments removed")
    if image.format == "HEIF" and (info.get("thumbnails") or info.get("depth_images")):
        facts.append("embedded thumbnail removed")
    return facts


def _ifd(exif, tag: int) -> dict:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # noqa: BLE001 - a broken IFD is left out like the rest of EXIF
        return {}


def _plain_pixels(image, form: str):
    """The pixels alone, in sRGB when the original said how its colours are meant, in a
    mode its format writes: RGB (or L) for JPEG, with alpha kept for PNG and WebP."""
    keeps_alpha = form in ("png", "webp") and (
        image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info)
    if image.mode in ("L", "1") and not keeps_alpha:
        target = "L"
    elif image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        target = "L"
        image = image.point(lambda value: value * (255 / 65535)) if image.mode != "F" else image
    else:
        target = "RGBA" if keeps_alpha else "RGB"
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            from PIL import ImageCms
            converted = ImageCms.profileToProfile(
                image, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
                outputMode="RGBA" if image.mode == "RGBA" else "RGB")
            if converted is not None:
                image = converted
        except Exception:  # noqa: BLE001 - an unusable profile is dropped, colours as they are
            pass
    result = image.convert(target)
    return result.copy() if result is image else result


def _thumbnail(image) -> bytes:
    from PIL import Image
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    if small.mode in ("RGBA", "LA"):
        flat = Image.new("RGB", small.size, (255, 255, 255))
        flat.paste(small, mask=small.getchannel("A"))
        small = flat
    elif small.mode != "L":
        small = small.convert("RGB")
    small.info.clear()
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return out.getvalue()


# --- PDF -------------------------------------------------------------------------------

# Annotations that carry a file, a player or a 3D scene: dropped with their content.
ACTIVE_ANNOTATIONS = {"/FileAttachment", "/RichMedia", "/Screen", "/Movie", "/Sound", "/3D"}
# The only actions a kept annotation may keep: going to a page of the document or a web link.
HARMLESS_ACTIONS = {"/GoTo", "/URI"}
DOCUMENT_INFO = ("/Author", "/Creator", "/Producer", "/Title", "/Subject", "/Keywords",
                 "/CreationDate", "/ModDate")


def _clean_pdf(form: str, data: bytes, limits: Limits) -> Cleaned:
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, NameObject

    # A file that is a PDF to one reader and an archive or a web page to another.
    if b"PK\x03\x04" in data or b"PK\x05\x06" in data:
        raise Refused(415, "this PDF is also another kind of file")
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        raise Refused(415, "this PDF is protected by a password: send it without the "
                           "protection")
    pages = len(reader.pages)
    if pages == 0:
        raise Refused(415, NOT_A_PDF)
    if pages > limits.max_pages:
        raise Refused(413, f"this PDF has more than {limits.max_pages} pages")

    found: set[str] = set()
    root = reader.trailer["/Root"].get_object()
    _document_facts(reader, root, found)

    writer = PdfWriter()
    for page in reader.pages:
        kept = writer.add_page(page)
        for key in ("/AA", "/Metadata", "/PieceInfo"):
            if key in kept:
                found.add("JavaScript removed" if key == "/AA" else "XMP metadata removed")
                del kept[NameObject(key)]
        if "/Annots" in kept:
            annotations = ArrayObject()
            for reference in kept["/Annots"].get_object():
                annotation = reference.get_object()
                if not hasattr(annotation, "get"):
                    continue
                if annotation.get("/Subtype") in ACTIVE_ANNOTATIONS:
                    found.add("embedded files removed")
                    continue
                _disarm(annotation, found)
                annotations.append(reference)
            kept[NameObject("/Annots")] = annotations
        _drop_resource_metadata(kept.get("/Resources"), found, set())
    writer.metadata = None                       # not even "pypdf" as the producer
    out = io.BytesIO()
    writer.write(out)
    return Cleaned("document", "application/pdf", out.getvalue(), _ordered(list(found)))


def _document_facts(reader, root, found: set[str]) -> None:
    info = reader.trailer.get("/Info")
    info = info.get_object() if info is not None else None
    if hasattr(info, "keys"):
        if info.get("/Author"):
            found.add("author removed")
        if any(key != "/Author" for key in info.keys()):
            found.add("document metadata removed")
    if "/Metadata" in root:
        found.add("XMP metadata removed")
    names = root.get("/Names")
    names = names.get_object() if names is not None else {}
    if "/JavaScript" in names:
        found.add("JavaScript removed")
    if "/EmbeddedFiles" in names:
        found.add("embedded files removed")
    for key in ("/OpenAction", "/AA"):
        if key in root:
            action = root[key].get_object()
            found.add("JavaScript removed" if _has_script(action) or key == "/AA"
                      else "opening action removed")
    form = root.get("/AcroForm")
    if form is not None:
        found.add("form fields removed")
        if "/XFA" in form.get_object():
            found.add("JavaScript removed")


def _has_script(action) -> bool:
    return hasattr(action, "get") and action.get("/S") in ("/JavaScript", "/Launch")


def _disarm(annotation, found: set[str]) -> None:
    from pypdf.generic import NameObject
    if "/AA" in annotation:
        del annotation[NameObject("/AA")]
        found.add("JavaScript removed")
    action = annotation.get("/A")
    if action is not None:
        action = action.get_object()
        if not hasattr(action, "get") or action.get("/S") not in HARMLESS_ACTIONS:
            del annotation[NameObject("/A")]
            found.add("JavaScript removed" if _has_script(action) else "actions removed")
        elif "/Next" in action:                  # a chain may lead to a script
            del action[NameObject("/Next")]
            found.add("actions removed")


def _drop_resource_metadata(resources, found: set[str], seen: set[int]) -> None:
    """Images and drawn forms may carry their own XMP (a camera's, an editor's)."""
    from pypdf.generic import NameObject
    resources = resources.get_object() if resources is not None else None
    if not hasattr(resources, "get") or id(resources) in seen:
        return
    seen.add(id(resources))
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not hasattr(xobjects, "values"):
        return
    for reference in xobjects.values():
        xobject = reference.get_object()
        if not hasattr(xobject, "get") or id(xobject) in seen:
            continue
        seen.add(id(xobject))
        for key in ("/Metadata", "/PieceInfo"):
            if key in xobject:
                del xobject[NameObject(key)]
                found.add("XMP metadata removed")
        _drop_resource_metadata(xobject.get("/Resources"), found, seen)


# --- Voice notes -----------------------------------------------------------------------

DATE_TAGS = ("TDRC", "TYER", "TDAT", "TIME", "TDOR", "TORY", "TDRL", "TDEN", "©day")
LOCATION_TAGS = ("©xyz", "location", "geo", "gps")


def _clean_voice(form: str, data: bytes, limits: Limits) -> Cleaned:
    if form == "amr":
        return _check_amr(data)
    if form == "ogg":
        return _clean_ogg(data)
    if form == "mp4":
        return _clean_mp4(data)
    return _clean_mpeg(form, data)


def _tag_facts(keys) -> list[str]:
    facts = ["tags removed"]
    lowered = [str(key).lower() for key in keys]
    if any(key.startswith(tag.lower()) for key in lowered for tag in DATE_TAGS) \
            or any("date" in key for key in lowered):
        facts.append("recording date removed")
    if any(tag.lower() in key for key in lowered for tag in LOCATION_TAGS):
        facts.append("location removed")
    return facts


def _clean_mpeg(form: str, data: bytes) -> Cleaned:
    """MP3 and AAC's ADTS: frames after an ID3v2 tag, perhaps APE and ID3v1 tags at the end."""
    import mutagen.apev2
    import mutagen.id3
    if form == "mp3":
        from mutagen.mp3 import MP3 as Reader
        media_type = "audio/mpeg"
    else:
        from mutagen.aac import AAC as Reader
        media_type = "audio/aac"
    audio = Reader(io.BytesIO(data))
    if not audio.info.length and form == "mp3":
        raise Refused(415, NOT_A_VOICE_NOTE)
    keys: list[str] = []
    try:
        keys += list(mutagen.id3.ID3(io.BytesIO(data)).keys())
    except mutagen.id3.ID3NoHeaderError:
        pass
    except mutagen.MutagenError:
        keys.append("ID3")
    has_v1 = len(data) >= 128 and data[-128:-125] == b"TAG"
    has_ape = b"APETAGEX" in data[-32 - 128:] or data.startswith(b"APETAGEX")
    buffer = io.BytesIO(data)
    for _ in range(4):                           # some files hold two tags, one after the other
        mutagen.id3.delete(buffer)
        mutagen.apev2.delete(buffer)
        cleaned = _whole(buffer)
        if not (cleaned.startswith(b"ID3") or cleaned[-128:-125] == b"TAG"):
            break
    if cleaned.startswith(b"ID3") or cleaned[-128:-125] == b"TAG":
        raise Refused(415, NOT_A_VOICE_NOTE)     # a second tag the readers left behind
    Reader(io.BytesIO(cleaned))                  # still the same kind of sound
    removed = _tag_facts(keys) if keys or has_v1 or has_ape else []
    return Cleaned("voice", media_type, cleaned, _ordered(removed))


def _clean_ogg(data: bytes) -> Cleaned:
    from mutagen.ogg import OggPage
    first = OggPage(io.BytesIO(data))
    packet = first.packets[0] if first.packets else b""
    if packet.startswith(b"OpusHead"):
        from mutagen.oggopus import OggOpus as Reader
    elif packet.startswith(b"\x01vorbis"):
        from mutagen.oggvorbis import OggVorbis as Reader
    else:
        raise Refused(415, "this Ogg file holds neither Opus nor Vorbis sound")
    buffer = io.BytesIO(data)
    audio = Reader(buffer)
    keys = list(audio.tags.keys()) if audio.tags is not None else []
    had_vendor = bool(audio.tags is not None and audio.tags.vendor)
    if audio.tags is not None:
        audio.tags.clear()
        audio.tags.vendor = ""                   # the recording app and its version
        buffer.seek(0)
        audio.save(buffer)
    cleaned = _whole(buffer)
    check = Reader(io.BytesIO(cleaned))
    if check.tags is not None and (list(check.tags.keys()) or check.tags.vendor):
        raise Refused(415, NOT_A_VOICE_NOTE)
    removed = _tag_facts(keys) if keys else (["tags removed"] if had_vendor else [])
    return Cleaned("voice", "audio/ogg", cleaned, _ordered(removed))


def _clean_mp4(data: bytes) -> Cleaned:
    from mutagen.mp4 import MP4
    if not _mp4_has_sound_only(data):
        raise Refused(415, "this file is not a voice note: it holds no sound, or also a video")
    buffer = io.BytesIO(data)
    audio = MP4(buffer)
    keys = list(audio.tags.keys()) if audio.tags is not None else []
    if audio.tags is not None:
        audio.delete(buffer)
    cleaned = _whole(buffer)
    check = MP4(io.BytesIO(cleaned))
    if check.tags:
        raise Refused(415, NOT_A_VOICE_NOTE)
    return Cleaned("voice", "audio/mp4", cleaned, _ordered(_tag_facts(keys) if keys else []))


def _mp4_has_sound_only(data: bytes) -> bool:
    """At least one sound track ('soun' handler) and no video track in the moov box."""
    handlers = []

    def walk(start: int, end: int, path: tuple[bytes, ...]) -> None:
        offset = start
        while offset + 8 <= end:
            size, name = struct.unpack(">I4s", data[offset:offset + 8])
            header = 8
            if size == 1:
                if offset + 16 > end:
                    return
                size, header = struct.unpack(">Q", data[offset + 8:offset + 16])[0], 16
            elif size == 0:
                size = end - offset
            if size < header or offset + size > end:
                return
            inner = path + (name,)
            if name in (b"moov", b"trak", b"mdia") and len(inner) <= 3:
                walk(offset + header, offset + size, inner)
            elif name == b"hdlr" and inner[:3] == (b"moov", b"trak", b"mdia"):
                handlers.append(data[offset + header + 8:offset + header + 12])
            offset += size

    walk(0, len(data), ())
    return b"soun" in handlers and b"vide" not in handlers


# AMR frames' lengths (the one-byte header included) by frame type; 0: not a valid type.
AMR_NB_FRAME = (13, 14, 16, 18, 20, 21, 27, 32, 6, 0, 0, 0, 0, 0, 0, 1)
AMR_WB_FRAME = (18, 24, 33, 37, 41, 47, 51, 59, 61, 6, 0, 0, 0, 0, 1, 1)


def _check_amr(data: bytes) -> Cleaned:
    """AMR holds no tags: the file is taken as sent once every frame is a sound one."""
    if data.startswith(b"#!AMR-WB\n"):
        offset, lengths, media_type = 9, AMR_WB_FRAME, "audio/amr-wb"
    elif data.startswith(b"#!AMR\n"):
        offset, lengths, media_type = 6, AMR_NB_FRAME, "audio/amr"
    else:
        raise Refused(415, "this AMR file is of a kind not taken (only single-channel AMR "
                           "and AMR-WB)")
    frames = 0
    while offset < len(data):
        header = data[offset]
        length = lengths[(header >> 3) & 0x0F]
        if header & 0x83 or not length or offset + length > len(data):
            raise Refused(415, NOT_A_VOICE_NOTE)
        offset += length
        frames += 1
    if not frames:
        raise Refused(415, NOT_A_VOICE_NOTE)
    return Cleaned("voice", media_type, data, ())


def _whole(buffer: io.BytesIO) -> bytes:
    return buffer.getvalue()


# --- Facts -----------------------------------------------------------------------------

ORDER = ("GPS position removed", "location removed", "camera make and model removed",
         "camera serial number removed", "date taken removed", "recording date removed",
         "author removed", "maker notes removed", "embedded thumbnail removed",
         "EXIF metadata removed", "XMP metadata removed", "IPTC metadata removed",
         "document metadata removed", "tags removed", "comments removed",
         "colour profile removed", "JavaScript removed", "opening action removed",
         "actions removed", "embedded files removed", "form fields removed",
         "other frames removed", "orientation applied")


def _ordered(facts: list[str]) -> tuple[str, ...]:
    """The facts once each, in a fixed order (what identifies first), so that the same
    file always says the same."""
    unique = dict.fromkeys(facts)
    rank = {fact: index for index, fact in enumerate(ORDER)}
    return tuple(sorted(unique, key=lambda fact: rank.get(fact, len(ORDER))))
