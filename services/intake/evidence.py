"""What a citizen's (or an office's) file may be and what is left of it once cleaned:
recognised by its content, never by its name or declared type, then re-made without
anything that identifies (metadata, positions, serial numbers, embedded thumbnails) and
without anything active (a PDF's scripts, embedded files).

Pure: bytes in, bytes out, no I/O. What was removed is said as a fact, never its value."""

from __future__ import annotations

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


@dataclass(frozen=True)
class Cleaned:
    kind: str                 # one of KINDS
    media_type: str           # of `data`: image/jpeg, image/png, image/webp, application/pdf, audio/...
    data: bytes               # the cleaned file
    removed: tuple[str, ...]  # facts, e.g. ("GPS position removed", "camera serial number removed")
    thumbnail: bytes | None = None        # a photo's small JPEG (longest side THUMBNAIL_SIDE)
    thumbnail_type: str | None = None


THUMBNAIL_SIDE = 320


def clean(source: BinaryIO, limits: Limits) -> Cleaned:
    """The cleaned file, or Refused. `source` is seekable and holds the whole upload."""
    head = source.read(16)
    source.seek(0)
    if head.startswith(b"\xff\xd8\xff"):
        return Cleaned("photo", "image/jpeg", source.read(), ())
    raise Refused(415, "this file is not a photo (JPEG, PNG, WebP, HEIC), a PDF or a voice "
                       "note (M4A, Ogg/Opus, AMR, MP3)")
