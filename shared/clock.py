"""The one place services read the time, so that tests and replays can reason about it."""

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
