"""The staff console: a page, a script, a style sheet and the words it shows, served by
routing at /console/ as written (no build step, nothing fetched from elsewhere). The files
are public and hold no data: everything a member of staff reads comes through the API,
with the session token they log in for."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from werkzeug.wrappers import Response

from shared import access
from shared.categories import categories
from shared.web import endpoint, not_found, page_file

FILES = Path(__file__).resolve().parent / "console"
# Only these names are ever served: a name is looked up here, never joined to a path, so
# no request (../, %2e%2e%2f, a backslash) can reach another file.
SERVED = {"console.js": "text/javascript", "console.css": "text/css"}
# The page runs its own script and style sheet and talks to this service alone: no
# inline script or style, no other origin, and no page may frame it. A case's photos and
# voice notes are shown from blob: URLs the script makes of what it fetched with the
# session token (an <img> or <audio> could not send it).
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
          "img-src 'self' data: blob:; media-src 'self' blob:; font-src 'self'; "
          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@cache
def _file(name: str) -> bytes:
    return (FILES / name).read_bytes()


@cache
def _words() -> bytes:
    """The console's own words with the service categories' names, from the file
    operators edit, so that the queue's filter and the case page name them alike."""
    words = json.loads(_file("words.json"))
    for language in ("en", "km"):
        words[language]["categories"] = {
            code: category.name_km if language == "km" else category.name_en
            for code, category in categories().items()}
    return json.dumps(words, ensure_ascii=False, sort_keys=True).encode()


def _served(request, body: bytes, mimetype: str) -> Response:
    return page_file(request, body, mimetype, POLICY)


class Console:
    """Mixed into routing's Service."""

    @endpoint("GET", "/console/", allow=(access.PUBLIC,))
    def console_page(self, request):
        """The staff console (its data comes through the API, after logging in)."""
        return _served(request, _file("index.html"), "text/html")

    @endpoint("GET", "/console/words.json", allow=(access.PUBLIC,))
    def console_words(self, request):
        """The console's words in Khmer and English."""
        return _served(request, _words(), "application/json")

    @endpoint("GET", "/console/{name}", allow=(access.PUBLIC,))
    def console_file(self, request, name):
        """The console's script and style sheet."""
        if name not in SERVED:
            raise not_found("file")
        return _served(request, _file(name), SERVED[name])
