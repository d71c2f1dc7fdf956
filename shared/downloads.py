"""How a case's file is handed out, by intake to the citizen and by routing to offices:
the media types a cleaned file may have, the name it is saved under and the headers that
keep browsers and caches from doing anything else with it."""

from __future__ import annotations

# The extension of a download's name, by the cleaned file's media type. The name is the
# attachment's id and this extension, never the citizen's own file name (not kept).
EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp",
    "application/pdf": "pdf",
    "audio/mp4": "m4a", "audio/aac": "aac", "audio/ogg": "ogg", "audio/amr": "amr",
    "audio/amr-wb": "awb", "audio/mpeg": "mp3",
}
MEDIA_TYPES = tuple(sorted(EXTENSIONS))


def extension(media_type: str) -> str:
    return EXTENSIONS.get(media_type, "bin")


def download_headers(attachment_id: str, media_type: str, size: int) -> dict:
    """A file's own type, saved rather than shown by the browser, never guessed at nor
    kept in a cache on the way."""
    return {"Content-Type": media_type,
            "Content-Disposition":
                f'attachment; filename="{attachment_id}.{extension(media_type)}"',
            "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store",
            "Content-Length": str(size)}
