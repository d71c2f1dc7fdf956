"""What a citizen's (or an office's) file may be and what is left of it once cleaned:
recognised by its content, never by its name or declared type, then re-made without
anything that identifies (metadata, positions, serial numbers, embedded thumbnails) and
without anything active (a PDF's scripts, embedded files).

Pure: bytes in, bytes out, no I/O. What was removed is said as a fact, never its value.
Every reader below parses bytes an attacker chose, so anything but Refused that one of
them raises is turned into a 415: a hostile file is a refusal, never a server error."""

from __future__ import annotations

import io
import logging
import math
import struct
import warnings
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

KINDS = ("photo", "document", "voice")

# pypdf logs what it repairs in a broken file with pieces of the file itself: a citizen's
# document must not reach the logs.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)


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

WHAT_IS_TAKEN = ("this file is not a photo (JPEG, PNG, WebP, HEIC), a PDF or a voice note "
                 "(M4A, AAC, Ogg/Opus or Vorbis, AMR, MP3)")
NOT_A_PHOTO = "this file is not a readable photo"
NOT_A_PDF = "this file is not a readable PDF"
NOT_A_VOICE_NOTE = "this file is not a readable voice note"


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
    longest = max(width, height)
    if form == "jpeg" and longest > limits.max_side:
        # A JPEG decodes at 1/2, 1/4 or 1/8 of its size for less: never below the size kept.
        scale = limits.max_side / longest
        image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    image.load()

    oriented = ImageOps.exif_transpose(image)
    # HEIC's reader turns the picture itself and keeps what the file said aside.
    said = image.getexif().get(ORIENTATION, 1), image.info.get("original_orientation", 1)
    if any(value not in (0, 1, None) for value in said):
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
        pixels.save(out, "PNG")                   # optimize would triple the time for 3 %
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

# What is kept of a page and of its annotations: anything else (actions, scripts, page
# XMP, private application data, a file attached) is left behind, recognised or not.
PAGE_KEYS = {"/Type", "/Parent", "/Resources", "/MediaBox", "/CropBox", "/BleedBox",
             "/TrimBox", "/ArtBox", "/Contents", "/Rotate", "/Group", "/UserUnit"}
RESOURCE_KEYS = ("/ExtGState", "/ColorSpace", "/Pattern", "/Shading", "/XObject", "/Font",
                 "/ProcSet", "/Properties")
ANNOTATIONS_KEPT = {"/Link", "/Text", "/FreeText", "/Line", "/Square", "/Circle", "/Polygon",
                    "/PolyLine", "/Highlight", "/Underline", "/Squiggly", "/StrikeOut",
                    "/Stamp", "/Caret", "/Ink", "/Widget"}
# Drawn as they are; neither the author's name (/T), dates, replies nor links to other
# objects (a page to clone, a parent field) are kept. Links inside the document are lost
# with /Dest: only a web or mail link stays, as a new action.
ANNOTATION_KEYS = ("/Type", "/Subtype", "/Rect", "/Contents", "/F", "/AP", "/AS", "/Border",
                   "/C", "/BS", "/QuadPoints", "/InkList", "/L", "/LE", "/Vertices", "/IC",
                   "/DA", "/Q", "/Open", "/Name", "/CA", "/BE", "/RD", "/DS", "/FT", "/V",
                   "/Ff", "/MK", "/DR", "/H")
LINK_SCHEMES = ("http://", "https://", "mailto:")
ACTIVE_ANNOTATIONS = {"/FileAttachment", "/RichMedia", "/Screen", "/Movie", "/Sound", "/3D"}


def _clean_pdf(form: str, data: bytes, limits: Limits) -> Cleaned:
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DictionaryObject, NameObject

    # A file that is a PDF to one reader and an archive to another: archive readers find
    # an archive by its directory at the end, as zipfile does. A bare signature anywhere
    # would refuse about one large PDF in a hundred, whose compressed streams hold those
    # four bytes by chance.
    if zipfile.is_zipfile(io.BytesIO(data)):
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
        left = [key for key in page.keys() if key not in PAGE_KEYS]
        for key in left:
            if key in ("/AA", "/JS", "/A"):
                found.add("JavaScript removed")
            elif key in ("/Metadata", "/PieceInfo"):
                found.add("XMP metadata removed")
        kept = writer.add_page(page, excluded_keys=left + ["/Annots", "/Resources"])
        resources = page.get("/Resources")
        resources = resources.get_object() if resources is not None else None
        if hasattr(resources, "get"):
            kept[NameObject("/Resources")] = DictionaryObject({
                NameObject(key): resources[key].clone(writer)
                for key in RESOURCE_KEYS if key in resources})
        for annotation in _annotations(page, found):
            writer.add_annotation(kept, _annotation_copy(annotation, writer, found))
        _drop_resource_metadata(kept.get("/Resources"), found, set())
    writer.metadata = None                       # not even "pypdf" as the producer
    writer.compress_identical_objects(remove_duplicates=False, remove_unreferenced=True)
    out = io.BytesIO()
    writer.write(out)
    return Cleaned("document", "application/pdf", out.getvalue(), _ordered(list(found)))


def _annotations(page, found: set[str]):
    annotations = page.get("/Annots")
    annotations = annotations.get_object() if annotations is not None else []
    for reference in annotations if isinstance(annotations, list) else []:
        annotation = reference.get_object()
        if not hasattr(annotation, "get"):
            continue
        subtype = annotation.get("/Subtype")
        if subtype in ANNOTATIONS_KEPT:
            yield annotation
        elif subtype in ACTIVE_ANNOTATIONS:
            found.add("embedded files removed")


def _annotation_copy(annotation, writer, found: set[str]):
    from pypdf.generic import DictionaryObject, NameObject, TextStringObject
    copy = DictionaryObject()
    for key in ANNOTATION_KEYS:
        if key in annotation:
            copy[NameObject(key)] = annotation[key].clone(writer)
    if "/T" in annotation and annotation.get("/Subtype") != "/Widget":
        found.add("author removed")
    if "/AA" in annotation:
        found.add("JavaScript removed")
    action = annotation.get("/A")
    action = action.get_object() if action is not None else None
    if hasattr(action, "get"):
        target = action.get("/URI")
        target = str(target.get_object()) if action.get("/S") == "/URI" and target else ""
        if target.strip().lower().startswith(LINK_SCHEMES):
            copy[NameObject("/A")] = DictionaryObject({
                NameObject("/S"): NameObject("/URI"), NameObject("/URI"): TextStringObject(target)})
        elif _has_script(action) or "/JS" in action:
            found.add("JavaScript removed")
        elif action.get("/S") != "/GoTo":
            found.add("actions removed")
    return copy


DOCUMENT_INFO = ("/Author", "/Creator", "/Producer", "/Title", "/Subject", "/Keywords",
                 "/CreationDate", "/ModDate")


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
# Each is re-made from its sound alone (MPEG frames, Ogg pages, MP4 boxes) rather than
# by asking a tag reader to remove what it recognises: a tag a reader does not recognise
# (damaged, or of a kind it does not know) would otherwise pass through untouched.

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


# MPEG audio frames' bit rates (kbit/s) by (version 1 or 2, layer) and index.
MPEG_BITRATES = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(data: bytes, at: int) -> tuple[int, tuple] | None:
    """(length, what must stay the same from frame to frame) of an MPEG audio frame at `at`."""
    if at + 4 > len(data) or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (data[at + 1] >> 3) & 3, (data[at + 1] >> 1) & 3
    rate_index, bitrate_index = (data[at + 2] >> 2) & 3, data[at + 2] >> 4
    if version == 1 or layer_bits == 0 or rate_index == 3 or bitrate_index in (0, 15):
        return None
    layer = 4 - layer_bits
    bitrate = MPEG_BITRATES[(1 if version == 3 else 2, layer)][bitrate_index] * 1000
    rate = MPEG_RATES[version][rate_index]
    padding = (data[at + 2] >> 1) & 1
    if layer == 1:
        length = (12 * bitrate // rate + padding) * 4
    elif layer == 3 and version != 3:
        length = 72 * bitrate // rate + padding
    else:
        length = 144 * bitrate // rate + padding
    return length, (version, layer, rate)


def _adts_frame(data: bytes, at: int) -> tuple[int, tuple] | None:
    if at + 7 > len(data) or data[at] != 0xFF or data[at + 1] & 0xF6 != 0xF0:
        return None
    length = (data[at + 3] & 3) << 11 | data[at + 4] << 3 | data[at + 5] >> 5
    header = 7 if data[at + 1] & 1 else 9
    if length < header or (data[at + 2] >> 2) & 0x0F > 12:
        return None
    return length, (data[at + 1] & 0x08, data[at + 2] >> 2 & 0x0F)


def _frames_only(data: bytes, frame) -> bytes:
    """The consecutive frames of the stream, found again after anything between them only
    where two frames alike follow each other; tags and the rest are left behind."""
    at, kept, same = 0, [], None
    while _id3v2_length(data[at:at + 10]) and at < len(data):
        at += _id3v2_length(data[at:at + 10])
    while at < len(data):
        found = frame(data, at)
        if found and at + found[0] <= len(data) and (same is None or found[1] == same):
            following = frame(data, at + found[0])
            if same is not None or at + found[0] == len(data) or (following and following[1] == found[1]):
                same = found[1]
                kept.append(data[at:at + found[0]])
                at += found[0]
                continue
        at = data.find(b"\xff", at + 1)
        if at < 0:
            break
    return b"".join(kept)


def _clean_mpeg(form: str, data: bytes) -> Cleaned:
    """MP3 and AAC's ADTS: the frames alone, without the ID3 and APE tags around them."""
    import mutagen.id3
    if form == "mp3":
        from mutagen.mp3 import MP3 as Reader
        frame, media_type = _mp3_frame, "audio/mpeg"
    else:
        from mutagen.aac import AAC as Reader
        frame, media_type = _adts_frame, "audio/aac"
    cleaned = _frames_only(data, frame)
    if not cleaned:
        raise Refused(415, NOT_A_VOICE_NOTE)
    audio = Reader(io.BytesIO(cleaned))
    if form == "mp3" and not audio.info.length:
        raise Refused(415, NOT_A_VOICE_NOTE)
    keys: list[str] = []
    try:
        keys = list(mutagen.id3.ID3(io.BytesIO(data)).keys())
    except mutagen.MutagenError:
        pass
    tagged = keys or data.startswith(b"ID3") or b"TAG" in data[-128:-124] \
        or b"APETAGEX" in data
    return Cleaned("voice", media_type, cleaned, _ordered(_tag_facts(keys) if tagged else []))


OPUS_NO_COMMENTS = b"OpusTags" + struct.pack("<II", 0, 0)
VORBIS_NO_COMMENTS = b"\x03vorbis" + struct.pack("<II", 0, 0) + b"\x01"


def _clean_ogg(data: bytes) -> Cleaned:
    """The stream's pages again, its comment packet (tags and the recording app's name)
    replaced by an empty one; pages of any other stream are refused."""
    from mutagen.ogg import OggPage
    source, pages = io.BytesIO(data), []
    while source.tell() < len(data):
        pages.append(OggPage(source))
    if not pages or any(page.serial != pages[0].serial for page in pages):
        raise Refused(415, "this Ogg file holds more than one stream")
    first = pages[0].packets[0] if pages[0].packets else b""
    if first.startswith(b"OpusHead"):
        from mutagen.oggopus import OggOpus as Reader
        headers, empty = 2, OPUS_NO_COMMENTS
    elif first.startswith(b"\x01vorbis"):
        from mutagen.oggvorbis import OggVorbis as Reader
        headers, empty = 3, VORBIS_NO_COMMENTS
    else:
        raise Refused(415, "this Ogg file holds neither Opus nor Vorbis sound")
    tags = Reader(io.BytesIO(data)).tags
    keys, vendor = list(tags.keys()), tags.vendor
    # The header packets end on a page of their own; the sound starts on the next one.
    count = 0
    while count < len(pages) and len(OggPage.to_packets(pages[:count + 1])) < headers:
        count += 1
    count += 1
    packets = OggPage.to_packets(pages[:count], strict=True)
    if len(packets) != headers or not packets[1].startswith(empty[:7]):
        raise Refused(415, NOT_A_VOICE_NOTE)
    packets[1] = empty
    # The first header is alone on the first page, as both formats ask.
    remade = OggPage.from_packets(packets[:1], sequence=0)
    remade += OggPage.from_packets(packets[1:], sequence=len(remade))
    for page in remade:
        page.serial, page.position = pages[0].serial, 0
    remade[0].first = True
    for sequence, page in enumerate(pages[count:], start=len(remade)):
        page.sequence = sequence
        remade.append(page)
    cleaned = b"".join(page.write() for page in remade)
    check = Reader(io.BytesIO(cleaned))
    if list(check.tags.keys()) or check.tags.vendor:
        raise Refused(415, NOT_A_VOICE_NOTE)
    tagged = keys or vendor
    return Cleaned("voice", "audio/ogg", cleaned, _ordered(_tag_facts(keys) if tagged else []))


# The boxes of a sound track kept in an MP4; any other (udta, meta and its ilst of
# tags, uuid with XMP, a maker's own) is overwritten by a `free` box of zeros of the same
# size, so that no offset into the file changes and nothing of it is left.
MP4_KEPT = {b"ftyp", b"moov", b"mdat", b"moof", b"mfra", b"sidx", b"styp",
            b"mvhd", b"trak", b"tkhd", b"edts", b"elst", b"mdia", b"mdhd", b"hdlr",
            b"minf", b"smhd", b"dinf", b"dref", b"stbl", b"stsd", b"stts", b"ctts",
            b"stsc", b"stsz", b"stz2", b"stco", b"co64", b"stss", b"sgpd", b"sbgp",
            b"mvex", b"trex", b"mehd", b"tref", b"iods", b"mfhd", b"traf", b"tfhd",
            b"tfdt", b"trun", b"tfra", b"mfro", b"url ", b"urn "}
MP4_CONTAINERS = {b"moov", b"trak", b"edts", b"mdia", b"minf", b"dinf", b"stbl", b"mvex",
                  b"moof", b"traf", b"mfra"}
MP4_DATED = {b"mvhd", b"tkhd", b"mdhd"}         # creation and modification times


def _clean_mp4(data: bytes) -> Cleaned:
    from mutagen.mp4 import MP4
    if not _mp4_has_sound_only(data):
        raise Refused(415, "this file is not a voice note: it holds no sound, or also a video")
    original = MP4(io.BytesIO(data))
    keys = list(original.tags.keys()) if original.tags is not None else []
    cleaned = bytearray(data)
    found: set[str] = set()
    _blank_boxes(cleaned, 0, len(cleaned), found, depth=0)
    cleaned = bytes(cleaned)
    check = MP4(io.BytesIO(cleaned))
    if check.tags:
        raise Refused(415, NOT_A_VOICE_NOTE)
    facts = list(found) + (_tag_facts(keys) if keys else [])
    return Cleaned("voice", "audio/mp4", cleaned, _ordered(facts))


def _boxes(data, start: int, end: int):
    """(offset, header length, size, name) of each box between start and end."""
    offset = start
    while offset + 8 <= end:
        size, name = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if size == 1:
            if offset + 16 > end:
                raise Refused(415, NOT_A_VOICE_NOTE)
            size, header = struct.unpack(">Q", data[offset + 8:offset + 16])[0], 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise Refused(415, NOT_A_VOICE_NOTE)
        yield offset, header, size, bytes(name)
        offset += size
    if offset != end and end - offset < 8 and any(data[offset:end]):
        raise Refused(415, NOT_A_VOICE_NOTE)


def _blank_boxes(data: bytearray, start: int, end: int, found: set[str], depth: int) -> None:
    for offset, header, size, name in list(_boxes(data, start, end)):
        if name not in MP4_KEPT or (depth == 0 and name in (b"free", b"skip")):
            data[offset + 4:offset + 8] = b"free"
            data[offset + header:offset + size] = bytes(size - header)
            if name in (b"udta", b"meta", b"uuid"):
                found.add("tags removed")
        elif name in MP4_CONTAINERS and depth < 8:
            _blank_boxes(data, offset + header, offset + size, found, depth + 1)
        elif name in MP4_DATED and size >= header + 4:
            body = offset + header
            width = 8 if data[body] == 1 else 4
            dates = slice(body + 4, min(body + 4 + 2 * width, offset + size))
            if any(data[dates]):
                found.add("recording date removed")
                data[dates] = bytes(dates.stop - dates.start)


def _mp4_has_sound_only(data: bytes) -> bool:
    """At least one sound track ('soun' handler) and no video track in the moov box."""
    def inside(span, name):
        for offset, header, size, found in _boxes(data, *span):
            if found == name:
                yield offset + header, offset + size

    handlers = [data[start + 8:start + 12]
                for moov in inside((0, len(data)), b"moov")
                for trak in inside(moov, b"trak")
                for mdia in inside(trak, b"mdia")
                for start, _ in inside(mdia, b"hdlr")]
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
