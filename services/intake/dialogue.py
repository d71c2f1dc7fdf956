"""The guided conversation a citizen has by SMS or chat: one message in, the replies out,
and, once everything a case needs is known, the submission to record. Channel-neutral:
the adapters (services/intake/conversations.py) turn a gateway's or a messenger's message
into `step` and its replies back into theirs.

Pure: no I/O. The conversation's state is a plain dict (JSON), kept by the adapter between
messages and dropped when the conversation ends."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Turn:
    """What one inbound message leads to.

    state:   the conversation's state to keep, or None when the conversation is over
             (recorded, stopped, or a one-off command answered).
    replies: the texts to send back, in order.
    submit:  a SubmitCase payload (services/intake/schemas.py) to record now, when the
             dialogue has all it needs; the adapter records it through the same path as
             the app, then calls `recorded` for the replies that carry the tracking code.
    command: a command the adapter answers with data the dialogue has not got:
             ("status", tracking_code) or ("message", text) for a message to the sender's
             open case; None otherwise.
    """

    state: dict | None
    replies: list[str] = field(default_factory=list)
    submit: dict | None = None
    command: tuple | None = None


def step(state: dict | None, text: str, sender: str) -> Turn:
    """The next turn of the conversation with `sender` (a phone number in E.164 for SMS,
    None-like "" for a messenger that gives no number)."""
    raise NotImplementedError


def recorded(state: dict, tracking_code: str, sensitive: bool) -> list[str]:
    """The replies once the case is recorded: its tracking code, how to follow it and,
    for a sensitive case, the national hotlines (services/intake/hotlines.yaml)."""
    raise NotImplementedError


def status_reply(language: str, tracking_code: str, status: str | None,
                 office_name: str | None, deadline: str | None) -> str:
    """STATUS in words; `status` None when no case has that code (or not the sender's)."""
    raise NotImplementedError


def refused_reply(language: str, errors: dict) -> str:
    """The words for a submission the app's validation refused (field errors)."""
    raise NotImplementedError
