"""Every message in both languages, with the longest real values: words, not codes;
SMS within their parts; times in Cambodia's time with the zone said."""

import re
from datetime import UTC, datetime

import pytest

from services.notifications.domain import CHANNELS, CITIZEN_MESSAGES, OFFICE_MESSAGES
from services.notifications.messages import LANGUAGES, Templates, local_time
from services.notifications.segments import boundary, segments
from shared.categories import CASE_TYPES, SENSITIVE, categories
from shared.events import DEADLINES, STATUS_AFTER
from shared.offices import describe, every_office_id

DIRECTORY = {identifier: describe(identifier) for identifier in every_office_id()}
# Why routing sends a case to an office, and why it escalates one.
REASONS = ("category-level", "sensitive", "breach", "ombudsman-breach", "appeal", "transfers")
CODES = {*REASONS, *DEADLINES, *STATUS_AFTER.values(), *CASE_TYPES, *categories(), SENSITIVE,
         *CHANNELS, "app", "open311", "satisfied", "findings"}
TRACKING = "PKG3J-JUT6T"
CASE_ID = "6f0e8c34-1d2b-4c5a-9e7f-0a1b2c3d4e5f"
DUE = "2026-12-02T04:37:00+00:00"


def longest(name):
    return max(DIRECTORY.values(), key=lambda office: len(getattr(office, name)))


def longest_of_kind(kind, name):
    return max((o for o in DIRECTORY.values() if o.kind == kind), key=lambda o: len(getattr(o, name)))


def longest_text(language, length=4000):
    """What people write: Khmer clusters with stacked consonants, or English words."""
    word = "ស្រុកខ្ញុំត្រូវការទឹកស្អាត " if language == "km" else "the water pump is still broken "
    return (word * (length // len(word) + 1))[:length]


def cases(language):
    """(message, details, office the case is at) for each message and each value its
    codes can take, with the longest names the directory has."""
    offices = [longest(f"name_{language}").id, longest_of_kind("owso", f"name_{language}").id,
               longest_of_kind("district-ombudsman", f"name_{language}").id,
               longest_of_kind("provincial-ombudsman", f"name_{language}").id, "national-ombudsman"]
    words = longest_text(language)
    dues = {"acknowledge_due": DUE, "resolve_due": DUE}
    for office in offices:
        sender = longest_of_kind("owsu", f"name_{language}").id
        yield "case-received", {}, office
        for reason in ("category-level", "sensitive"):
            yield "case-routed", {"office_id": office, "reason": reason, **dues}, office
            yield "new-case", {"office_id": office, "reason": reason, **dues}, office
        for reason in (words, None):
            transfer = {"office_id": office, "from_office_id": sender, "reason": reason,
                        "transfers": 2, **dues}
            yield "case-routed", transfer, office
            yield "new-case", transfer, office
        for reason in REASONS[2:]:
            escalated = {"office_id": office, "from_office_id": sender, "reason": reason, **dues}
            yield "case-escalated", escalated, office
            yield "escalation", escalated, office
        for deadline in DEADLINES:
            yield "deadline-warning", {"deadline": deadline, "due_at": DUE}, office
            yield "deadline-breached", {"deadline": deadline, "due_at": DUE}, office
        for question in (words, None):
            yield "information-requested", {"question": question}, office
        for resolution in (words, None):
            yield "case-resolved", {"resolution": resolution}, office
        yield "information-provided", {"answers_request": True}, office
        for outcome in ("satisfied", "findings", None):
            yield "case-closed", {"outcome": outcome}, office


def raw_codes(text, language):
    """Codes of ours in a text. In Khmer any of them is one; in English the codes that
    are also words of the language (appeal, resolve) may be words, but not a code with
    a hyphen, nor any office id."""
    text = text.replace(TRACKING, "").replace(CASE_ID, "")
    found = {office for office in DIRECTORY if office in text}
    for code in CODES:
        if language == "km" or "-" in code or code in ("open311",):
            if re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", text):
                found.add(code)
    return found


def test_every_message_is_covered():
    assert {message for message, _, _ in cases("km")} == {*CITIZEN_MESSAGES.values(),
                                                          *OFFICE_MESSAGES.values()}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_says_words_not_codes_and_fits_its_sms(language, caplog):
    templates = Templates(sms_limit=3)
    for message, details, office in cases(language):
        rendered = templates.render(message, language, details, TRACKING, office, CASE_ID)
        assert rendered.language == language
        for part in (rendered.subject, rendered.email, rendered.sms):
            assert not raw_codes(part, language), (message, details, part)
            assert "None" not in part and "{{" not in part
        assert TRACKING in rendered.sms and TRACKING in rendered.subject
        assert segments(rendered.sms) <= 3, (message, len(rendered.sms), rendered.sms)
        # Nothing cut but what people wrote: the message still ends as it was written.
        assert rendered.sms.endswith(("។", ".")), rendered.sms
        for part in (rendered.email, rendered.sms):
            if "due_at" in details or details.get("acknowledge_due") and message in (
                    "new-case", "escalation"):
                zone = "ម៉ោងនៅកម្ពុជា UTC+7" if language == "km" else "Cambodia time, UTC+7"
                assert zone in part, (message, part)
    assert "cut to" not in caplog.text


def test_a_long_resolution_is_shortened_with_an_ellipsis_never_inside_a_khmer_cluster():
    words = longest_text("km")
    sms = Templates(sms_limit=3).render("case-resolved", "km", {"resolution": words}, TRACKING,
                                        "commune-120101").sms
    quoted = sms.split("«", 1)[1].split("»", 1)[0]
    assert quoted.endswith("…") and words.startswith(quoted[:-1])
    assert boundary(words, len(quoted) - 1), "cut between two clusters, not inside one"
    assert "សូមបើកកម្មវិធីសំឡេងយើង" in sms and 150 < len(sms) <= 201
    english = Templates(sms_limit=2).render("case-resolved", "en",
                                            {"resolution": longest_text("en")}, TRACKING,
                                            "commune-120101").sms
    assert segments(english) <= 2 and '..."' in english and "open the Our Voice app" in english
    kept = english.split('"')[1][:-3]
    assert longest_text("en")[len(kept)] == " "  # ends on a whole word


def test_a_breach_at_an_ombudsman_goes_to_the_next_ombudsman_up():
    breach = {"deadline": "resolve", "due_at": DUE}
    district = Templates().render("deadline-breached", "en", breach, TRACKING,
                                  "district-ombudsman-1201")
    provincial = DIRECTORY["provincial-ombudsman-12"].name_en
    assert f"It goes to {provincial}, the next ombudsman up." in district.sms
    office = Templates().render("deadline-breached", "en", breach, TRACKING, "owso-1201")
    assert f"It goes to {DIRECTORY['district-ombudsman-1201'].name_en}." in office.sms
    national = Templates().render("deadline-breached", "km", breach, TRACKING, "national-ombudsman")
    assert "នៅជាមួយអ្នកដដែល" in national.sms
    assert "the case stays with you" in Templates().render(
        "deadline-breached", "en", breach, TRACKING, "national-ombudsman").email


def test_times_are_cambodian_with_the_zone_named():
    moment = datetime(2026, 12, 2, 4, 37, tzinfo=UTC)
    assert local_time(moment, "en") == "2 December 2026, 11:37 (Cambodia time, UTC+7)"
    assert local_time(DUE, "km") == "ថ្ងៃទី២ ខែធ្នូ ឆ្នាំ២០២៦ ម៉ោង ១១:៣៧ (ម៉ោងនៅកម្ពុជា UTC+7)"
    assert local_time("2026-01-31T17:05:00+00:00", "en").startswith("1 February 2026, 00:05")


def test_an_office_is_named_as_the_directory_names_it_and_never_by_its_id():
    names = {"commune-120101": ("Renamed Commune Hall", "សាលាឃុំថ្មី")}.get
    rendered = Templates().render("case-routed", "km", {"office_id": "commune-120101",
                                                        "reason": "category-level"},
                                  TRACKING, None, names=names)
    assert "សាលាឃុំថ្មី" in rendered.sms
    unknown = Templates().render("case-routed", "en", {"office_id": "owso-9999",
                                                       "reason": "category-level"}, TRACKING, None)
    assert "owso-9999" not in unknown.email and "the office" in unknown.email
