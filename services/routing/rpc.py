"""What routing answers other services: how to reach an office, for notifications to its
staff, and the words a sensitive case's citizen alone may read, for intake."""

from __future__ import annotations

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
