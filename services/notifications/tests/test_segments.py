"""The SMS part counter against texts whose parts are known."""

import pytest

from services.notifications.segments import boundary, encoding, fit, segments, shorten


@pytest.mark.parametrize(("text", "coding", "parts"), [
    ("", "gsm7", 1),
    ("a" * 160, "gsm7", 1),
    ("a" * 161, "gsm7", 2),
    ("a" * 306, "gsm7", 2),
    ("a" * 307, "gsm7", 3),
    ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", "gsm7", 1),
    ("€" * 80, "gsm7", 1),  # each of the extension table costs two: 160
    ("€" * 81, "gsm7", 2),
    ("a" * 158 + "€", "gsm7", 1),  # 160 septets
    ("a" * 159 + "€", "gsm7", 2),
    ("a" * 152 + "€" + "a" * 152, "gsm7", 3),  # the € starts part two, which then holds 151 more
    ("’", "ucs2", 1),  # a curly quote is not GSM-7: the whole text goes as UCS-2
    ("ក" * 70, "ucs2", 1),
    ("ក" * 71, "ucs2", 2),
    ("ក" * 134, "ucs2", 2),
    ("ក" * 135, "ucs2", 3),
    ("a" * 69 + "😀", "ucs2", 2),  # an emoji is two UTF-16 units: 71
    ("a" * 66 + "😀" + "a" * 67, "ucs2", 3),  # the pair is not split between parts
])
def test_parts_as_the_network_counts_them(text, coding, parts):
    assert encoding(text) == coding
    assert segments(text) == parts


def test_a_khmer_cluster_is_never_cut():
    text = "ស្រុក"  # ស + coeng + រ + ុ + ក
    assert [i for i in range(len(text) + 1) if boundary(text, i)] == [0, 4, 5]
    assert shorten("ខ្ញុំស្រុក", 7, "…") == "ខ្ញុំ…"  # not inside ស្រុ, whose marks follow ស
    assert shorten("ខ្ញុំស្រុក", 4, "…") == "…"  # ខ្ញុំ is one cluster of five characters
    assert not boundary("e\u0301", 1)  # an accent stays with its letter


def test_shorten_ends_on_a_word_when_one_is_near():
    assert shorten("one two three four", 12, "...") == "one two..."
    assert shorten("short", 10, "...") == "short"


def test_fit_shortens_only_what_people_wrote():
    around = "Case X: “{}”. Open the app."

    def render(text):
        return around.replace("{}", text)

    text = fit(render, "word " * 500, 2)
    assert segments(text) == 2 and text.endswith("…”. Open the app.")
    assert fit(render, "tiny", 1) == render("tiny")
    assert fit(lambda t: "x" * 400 + t, "abc", 1) is None
