"""What every service's aggregates have in common.

Their ids are given, not drawn: derived from what the aggregate is about (a case's
tracking code, an event and a recipient), so a redelivered message makes the same
aggregate and its second recording is refused. And every event after the first carries
`context`: what the public envelope needs to say about the case (its tracking code,
place and office, whether it is sensitive), known to the aggregate, not to the relay."""

from __future__ import annotations

import inspect
from typing import Any

from eventsourcing.domain import Aggregate as _Aggregate
from eventsourcing.domain import event

__all__ = ["Aggregate", "event", "id_from"]


def id_from(argument: str) -> staticmethod:
    """`create_id` for an aggregate whose id is its constructor's `argument`.

    eventsourcing passes `create_id` only the arguments its signature names, so the
    signature is made to name that one."""

    def create_id(**kwargs: Any) -> Any:
        return kwargs[argument]

    create_id.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(argument, inspect.Parameter.KEYWORD_ONLY)])
    return staticmethod(create_id)


class Aggregate(_Aggregate):
    """An aggregate whose later events carry its `event_context()` unless given one."""

    class Event(_Aggregate.Event):
        context: dict

    def event_context(self) -> dict:
        """What the public envelope of this aggregate's next event says about its case."""
        return {}

    def trigger_event(self, event_class, **kwargs):
        kwargs.setdefault("context", self.event_context())
        return super().trigger_event(event_class, **kwargs)
