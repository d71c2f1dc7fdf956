"""The console's files as served: the same words in both languages, no inline script or
style (the Content-Security-Policy forbids them), nothing fetched from elsewhere."""

import gzip
import json
import re

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.routing import console

WORDS = json.loads(console._words())


def keys(words: dict, prefix: str = "") -> set[str]:
    found = set()
    for key, value in words.items():
        found |= keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return found


def test_khmer_and_english_have_the_same_words():
    assert keys(WORDS["km"]) == keys(WORDS["en"])
    assert all(re.search("[\u1780-\u17ff]", WORDS["km"][key]) for key in
               ("title", "log_in", "conflict", "not_allowed"))


def test_every_word_the_script_asks_for_exists():
    script = (console.FILES / "console.js").read_text(encoding="utf-8")
    page = (console.FILES / "index.html").read_text(encoding="utf-8")
    asked = set(re.findall(r'word\("([a-z_.]+)"', script))
    asked |= set(re.findall(r'data-text="([a-z_]+)"', page))
    assert asked - keys(WORDS["en"]) == set()


def test_the_page_has_no_inline_script_or_style_and_nothing_from_elsewhere():
    page = (console.FILES / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script[^>]*>", page) == ['<script src="console.js" defer>']
    assert "<style" not in page and " style=" not in page
    assert not re.search(r" on[a-z]+=", page)
    for name in ("index.html", "console.js", "console.css"):
        text = (console.FILES / name).read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), name


def served(method, name=None, headers=None):
    request = Request(EnvironBuilder(method="GET", headers=headers or {}).get_environ())
    return getattr(console.Console(), method)(request, **({"name": name} if name else {}))


def test_files_come_with_their_type_the_policy_and_a_validator():
    for method, name, mimetype in (("console_page", None, "text/html; charset=utf-8"),
                                   ("console_file", "console.js", "text/javascript; charset=utf-8"),
                                   ("console_file", "console.css", "text/css; charset=utf-8"),
                                   ("console_words", None, "application/json")):
        response = served(method, name)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == mimetype
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-cache"
        again = served(method, name, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304


def test_only_the_console_files_are_served():
    for name in ("index.html", "words.json", "..", "../service.py", "console.py",
                 "%2e%2e%2fservice.py", "..\\service.py", "CONSOLE.JS"):
        response = served("console_file", name)
        assert response.status_code == 404, name


def test_a_browser_that_takes_gzip_gets_it_compressed():
    plain = served("console_file", "console.js")
    packed = served("console_file", "console.js", headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert len(packed.get_data()) < len(plain.get_data()) / 2
    assert packed.headers["ETag"] != plain.headers["ETag"]
