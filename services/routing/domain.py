"""Where a case goes and what the office does with it. Pure domain: no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.categories import Category
from shared.offices import office_id

# Until deadline policies are configured per category, every case gets these.
DEFAULT_ACKNOWLEDGE_WITHIN = timedelta(days=2)
DEFAULT_RESOLVE_WITHIN = timedelta(days=15)


def choose_office(category: Category, commune: str) -> tuple[str, str]:
    """The office that delivers the category's service at the complaint's place, and why.
    Sensitive cases skip the service office and go to the ombudsman of that level."""
    district, province = commune[:4], commune[:2]
    if category.sensitive:
        if category.level == "province":
            return office_id("provincial-ombudsman", province), "sensitive"
        return office_id("district-ombudsman", district), "sensitive"
    if category.level == "commune":
        return office_id("commune", commune), "category-level"
    if category.level == "district":
        return office_id("owso", district), "category-level"
    return office_id("owsu", province), "category-level"


class Case(Aggregate):
    """A case as the offices handle it: its office, its deadlines, its progress."""

    class Event(Aggregate.Event):
        context: dict

    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    def trigger_event(self, event_class, **kwargs):
        # Every later event carries where the case is, for the public envelope.
        kwargs.setdefault("context", {"tracking_code": self.tracking_code,
                                      "commune": self.commune, "office_id": self.office_id})
        return super().trigger_event(event_class, **kwargs)

    @event("CaseRouted")
    def __init__(
        self,
        case_id: UUID,
        context: dict,
        office_id: str,
        reason: str,
        type: str,
        category: str,
        acknowledge_due: datetime,
        resolve_due: datetime,
    ) -> None:
        self.tracking_code = context["tracking_code"]
        self.commune = context["commune"]
        self.office_id = office_id
        self.reason = reason
        self.type = type
        self.category = category
        self.acknowledge_due = acknowledge_due
        self.resolve_due = resolve_due
        self.status = "routed"

    @classmethod
    def route(cls, case_id: UUID, tracking_code: str, commune: str, case_type: str,
              category: Category, received_at: datetime) -> Case:
        office, reason = choose_office(category, commune)
        return cls(
            case_id=case_id,
            context={"tracking_code": tracking_code, "commune": commune, "office_id": office},
            office_id=office,
            reason=reason,
            type=case_type,
            category=category.code,
            acknowledge_due=received_at + DEFAULT_ACKNOWLEDGE_WITHIN,
            resolve_due=received_at + DEFAULT_RESOLVE_WITHIN,
        )
