"""The words of each message: one file per message and language under `templates/`,
holding Jinja2 templates for the email's subject and body and for the SMS."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import yaml

from shared.config import console_url
from shared.offices import describe

log = logging.getLogger(__name__)

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("km", "en")
FALLBACK = "en"
PHNOM_PENH = ZoneInfo("Asia/Phnom_Penh")


@dataclass(frozen=True)
class Rendered:
    language: str  # the language it was written in (English when a translation is missing)
    subject: str
    email: str
    sms: str


def local_time(value) -> str:
    """A deadline as people in Cambodia read it."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(PHNOM_PENH).strftime("%Y-%m-%d %H:%M")


def office_name(office_id: str | None, language: str) -> str:
    office = describe(office_id) if office_id else None
    if office is None:
        return office_id or ""
    return office.name_km if language == "km" else office.name_en


class Templates:
    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory or os.environ.get("NOTIFICATIONS_TEMPLATES")
                              or DEFAULT_DIRECTORY)
        # StrictUndefined: a template naming a variable the message does not have fails
        # that delivery (recorded, retried, then dead-lettered) instead of sending a gap.
        self.jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                        keep_trailing_newline=False)
        self.jinja.filters["local_time"] = local_time

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
               office_id: str | None, case_id: str | None = None) -> Rendered:
        written_in, templates = self.templates(message, language)
        variables = {
            "question": None, "resolution": None, "deadline": None, "due_at": None,
            "reason": None, "outcome": None, "acknowledge_due": None, "resolve_due": None,
            **details,
            "tracking_code": tracking_code,
            # The case's page in the staff console.
            "case_url": f"{console_url()}/console/#/cases/{case_id}" if case_id else None,
            "office_name": office_name(details.get("office_id") or office_id, written_in),
            "from_office_name": office_name(details.get("from_office_id"), written_in)
            if details.get("from_office_id") else None,
        }
        return Rendered(language=written_in,
                        subject=templates["subject"].render(variables).strip(),
                        email=templates["email"].render(variables).strip() + "\n",
                        sms=templates["sms"].render(variables).strip())
