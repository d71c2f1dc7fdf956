"""The words of each message: one file per message and language under `templates/`,
holding Jinja2 templates for the email's subject and body and for the SMS.

People read these, in Khmer or in English: no code of ours (a reason, a deadline's name,
an office id) ever appears in them as it is. Templates turn codes into sentences; this
module gives them offices by name, times in Cambodia's time with the zone said, and
keeps each SMS within its number of parts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import yaml

from services.notifications import segments
from shared.config import console_url
from shared.offices import describe, ombudsman_above
from shared.settings import settings

log = logging.getLogger(__name__)

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("km", "en")
FALLBACK = "en"
PHNOM_PENH = ZoneInfo("Asia/Phnom_Penh")
# What people wrote that a message repeats; the SMS shortens these to fit.
WRITTEN = ("resolution", "question", "transfer_reason")

MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "km": ("មករា", "កុម្ភៈ", "មីនា", "មេសា", "ឧសភា", "មិថុនា", "កក្កដា", "សីហា", "កញ្ញា",
           "តុលា", "វិច្ឆិកា", "ធ្នូ"),
}
KHMER_DIGITS = str.maketrans("0123456789", "០១២៣៤៥៦៧៨៩")
# An office the directory does not know is still named for what it is, never by its id.
UNKNOWN_OFFICE = {"en": "the office", "km": "ការិយាល័យ"}

# office id -> (name_en, name_km), or None when the directory does not know it.
OfficeNames = Callable[[str], tuple[str, str] | None]


@dataclass(frozen=True)
class Rendered:
    language: str  # the language it was written in (English when a translation is missing)
    subject: str
    email: str
    sms: str


def zone_offset(moment: datetime) -> str:
    minutes = int(moment.utcoffset().total_seconds() // 60)
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{'+' if minutes >= 0 else '-'}{hours}" + (f":{rest:02d}" if rest else "")


def local_time(value, language: str = FALLBACK) -> str:
    """An instant as people in Cambodia read it, with the zone said: `2 December 2026,
    11:37 (Cambodia time, UTC+7)`, in Khmer with Khmer month names and digits."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = moment.astimezone(PHNOM_PENH)
    month = MONTHS["km" if language == "km" else "en"][moment.month - 1]
    if language == "km":
        when = f"ថ្ងៃទី{moment.day} ខែ{month} ឆ្នាំ{moment.year} ម៉ោង {moment:%H:%M}"
        return f"{when.translate(KHMER_DIGITS)} (ម៉ោងនៅកម្ពុជា {zone_offset(moment)})"
    return f"{moment.day} {month} {moment.year}, {moment:%H:%M} (Cambodia time, {zone_offset(moment)})"


def known_office(office_id: str) -> tuple[str, str] | None:
    office = describe(office_id)
    return (office.name_en, office.name_km) if office else None


def office_name(office_id: str | None, language: str, names: OfficeNames = known_office) -> str:
    if not office_id:
        return ""
    found = names(office_id) or known_office(office_id)
    if found is None:
        log.warning("office %r is in no directory; the message says %r", office_id,
                    UNKNOWN_OFFICE["en"])
        return UNKNOWN_OFFICE["km" if language == "km" else "en"]
    return found[1] if language == "km" else found[0]


@jinja2.pass_context
def _when(context, value) -> str:
    return local_time(value, context["language"])


class Templates:
    def __init__(self, directory: Path | None = None, sms_limit: int | None = None):
        self.directory = Path(directory or settings().notifications_templates)
        self.sms_limit = sms_limit or settings().notifications_sms_segments
        # StrictUndefined: a template naming a variable the message does not have fails
        # that delivery (recorded, retried, then dead-lettered) instead of sending a gap.
        self.jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                        keep_trailing_newline=False)
        self.jinja.filters["local_time"] = _when

    @cache  # noqa: B019 - one instance per process; the files do not change while it runs
    def _compiled(self, message: str, language: str) -> dict[str, jinja2.Template] | None:
        path = self.directory / language / f"{message}.yaml"
        if not path.is_file():
            return None
        source = yaml.safe_load(path.read_text(encoding="utf-8"))
        source.setdefault("email", source["sms"])
        return {part: self.jinja.from_string(source[part]) for part in ("subject", "email", "sms")}

    def templates(self, message: str, language: str) -> tuple[str, dict[str, jinja2.Template]]:
        """The templates of a message in a language, or in English when that translation
        is missing (which the log reports; it is never a reason not to send)."""
        found = self._compiled(message, language)
        if found is not None:
            return language, found
        if language != FALLBACK:
            log.warning("no %s translation of message %r; sending it in English",
                        language, message)
        found = self._compiled(message, FALLBACK)
        if found is None:
            raise LookupError(f"no template for message {message!r}")
        return FALLBACK, found

    def render(self, message: str, language: str, details: dict, tracking_code: str,
               office_id: str | None, case_id: str | None = None,
               names: OfficeNames = known_office) -> Rendered:
        """`office_id` is the office the case is at; `names` names offices as the
        directory (with operators' amendments) does."""
        written_in, templates = self.templates(message, language)
        at = details.get("office_id") or office_id
        above = ombudsman_above(at) if at else None
        from_office = details.get("from_office_id")
        variables = {
            "question": None, "resolution": None, "deadline": None, "due_at": None,
            "reason": None, "outcome": None, "acknowledge_due": None, "resolve_due": None,
            **details,
            "language": written_in,
            "tracking_code": tracking_code,
            # The case's page in the staff console.
            "case_url": f"{console_url()}/console/#/cases/{case_id}" if case_id else None,
            "office_name": office_name(at, written_in, names),
            "at_ombudsman": bool(at) and "ombudsman" in at,
            "from_office_name": office_name(from_office, written_in, names) if from_office else None,
            # Where the case goes when this office misses a deadline; None at the top.
            "next_office_name": office_name(above, written_in, names) if above else None,
            # A transfer's reason is what staff wrote; a routing's is a code the
            # templates put in words.
            "transfer_reason": details.get("reason") if from_office and message in (
                "new-case", "case-routed") else None,
        }
        sms = templates["sms"]
        written = next((name for name in WRITTEN if variables.get(name)), None)
        if written:
            text = segments.fit(lambda shorter: sms.render({**variables, written: shorter})
                                .strip(), variables[written], self.sms_limit)
            if text is None:  # even the words around it are too long: say it without it
                text = sms.render({**variables, written: None}).strip()
        else:
            text = sms.render(variables).strip()
        if segments.segments(text) > self.sms_limit:
            log.warning("SMS %s in %s takes %d parts; cut to %d", message, written_in,
                        segments.segments(text), self.sms_limit)
            text = segments.fit(lambda shorter: shorter, text, self.sms_limit) or ""
        return Rendered(language=written_in,
                        subject=templates["subject"].render(variables).strip(),
                        email=templates["email"].render(variables).strip() + "\n",
                        sms=text)
