"""What routing answers other services: how to reach an office, for notifications to its
staff, the words a sensitive case's citizen alone may read, for intake, and its part of
a case's history, for reporting's audit."""

from __future__ import annotations

from services.routing import history
from shared.rpc import rpc


class Answers:
    """Mixed into routing's Service, whose store and directory it reads."""

    @rpc
    def office_contact(self, office_id: str) -> dict | None:
        """How to reach an office (the directory with operators' amendments), for
        notifications to its staff; None for an office the directory does not know."""
        office = self.directory().get(office_id)
        if office is None:
            return None
        return {"office_id": office.id, "name_en": office.name_en, "name_km": office.name_km,
                "email": office.email, "phone": office.phone, "active": office.active}

    @rpc(callers=("intake",))
    def words_for_citizen(self, case_id: str) -> dict | None:
        """The office's last question, the resolution and the ombudsman's findings of a
        sensitive case, whose public events carry no words: for intake, which shows them
        to the citizen alone. None for any other case."""
        return self.store.words_for_citizen(case_id)

    @rpc(callers=("reporting",))
    def case_history(self, case_id: str) -> list[dict]:
        """Routing's part of the case's history, for an audit (see shared/history.py)."""
        with self.db.transaction() as cursor:
            return history.case_history(cursor, case_id)
