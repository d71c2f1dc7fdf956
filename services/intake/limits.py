"""Intake's limits: submissions and Open311 key guesses per client address, and inbound
SMS and Telegram messages per sender (buckets in this process's memory, see
shared/limits.py), how much a citizen may add to one case and
how many files (counted from the case itself, so they hold across restarts and
instances), and what a file may be (services/intake/evidence.py)."""

from __future__ import annotations

from dataclasses import dataclass

from nameko.extensions import DependencyProvider

from services.intake import evidence
from services.intake.domain import AttachmentLimits, MessageLimits
from shared.limits import RateLimit, retry_after
from shared.settings import settings
from shared.web import HttpError

# The defaults are the settings' (shared/settings.py). Many citizens reach the internet
# through one carrier-grade NAT address, so the submissions' one is a guard against
# floods, not a limit on one person; a wrong api_key is either a misconfigured client,
# which a few tries reveal, or a guess; a case's messages are the citizen's additions
# between the office's answers, and a hundred (twenty a day) is more than any real
# exchange needs and keeps the case's view and every command on it small.
TOO_MANY = "too many submissions from this address"


def configured_per_minute() -> int:
    """Submissions per client address and minute (0: no limit)."""
    return settings().submissions_per_minute


def message_limits() -> MessageLimits:
    current = settings()
    return MessageLimits(per_case=current.messages_per_case, per_day=current.messages_per_day)


def attachment_limits() -> AttachmentLimits:
    current = settings()
    return AttachmentLimits(per_case=current.attachments_per_case,
                            bytes_per_case=current.attachment_bytes_per_case,
                            per_day=current.attachments_per_day)


def evidence_limits() -> evidence.Limits:
    current = settings()
    return evidence.Limits(max_bytes=current.attachment_max_bytes,
                           max_pixels=current.photo_max_pixels,
                           max_side=current.photo_max_side)


@dataclass(frozen=True)
class IntakeLimits:
    submissions: RateLimit
    key_failures: RateLimit
    messages: MessageLimits
    attachments: AttachmentLimits
    files: evidence.Limits
    conversations: RateLimit  # inbound SMS and Telegram messages per sender

    def admit(self, client: str) -> float | None:
        """A submission: None if the client may submit now, else the seconds to wait."""
        return self.submissions.admit(client)


class IntakeLimitsProvider(DependencyProvider):
    """One set of limits per process, shared by every worker of the service; read at
    start, so a wrong setting stops the service instead of being ignored."""

    def setup(self) -> None:
        self.limits = IntakeLimits(
            submissions=RateLimit(configured_per_minute()),
            key_failures=RateLimit(settings().open311_key_failures_per_minute),
            messages=message_limits(),
            attachments=attachment_limits(),
            files=evidence_limits(),
            conversations=RateLimit(settings().conversation_messages_per_minute),
        )

    def get_dependency(self, worker_ctx) -> IntakeLimits:
        return self.limits


def too_many(seconds: float) -> HttpError:
    """The refusal of a submission over the limit."""
    wait = retry_after(seconds)
    return HttpError(429, {"_": [f"{TOO_MANY}; try again in {wait} s"]},
                     headers={"Retry-After": wait})
