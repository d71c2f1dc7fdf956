"""Intake: where a citizen's case enters, where the citizen follows it and adds to it,
and the Open311 door to the same cases. The entrypoints are grouped by who calls them:
the citizen's app (citizens.py), staff at an office desk (desk.py), whoever adds a file
to a case (files.py), Open311 clients (open311.py), the SMS gateway and the Telegram
bot (conversations.py), other services (rpc.py);
the use cases are intake's store's (application.py)."""

from __future__ import annotations

from uuid import UUID

from services.intake import attachments, conversations, privacy, readmodels
from services.intake.appends import NewCases
from services.intake.application import NOT_YET_VIEWED, Intake
from services.intake.citizens import Citizens
from services.intake.commands import COMMANDS
from services.intake.conversations import Conversations
from services.intake.desk import OfficeDesk
from services.intake.files import Evidence
from services.intake.history import HISTORY
from services.intake.limits import IntakeLimitsProvider
from services.intake.migrations import MIGRATIONS
from services.intake.open311 import Open311
from services.intake.rpc import Rpc
from shared.consumer import on_event_batches
from shared.db import DatabaseProvider
from shared.rpc import RpcProxy
from shared.store import EventStore
from shared.web import HealthAndSpec

__all__ = ["Intake", "Service"]


class Service(Citizens, OfficeDesk, Evidence, Open311, Conversations, Rpc, HealthAndSpec):
    name = "intake"
    title = "Our Voice intake"
    commands = COMMANDS
    migrations = MIGRATIONS

    store = EventStore(Intake, projections=[readmodels.CASES])
    # Its part of a case's history, read from that store (see shared/history.py).
    history = HISTORY
    db = DatabaseProvider(*privacy.DDL, *attachments.DDL, *conversations.DDL,
                          subscribers=(readmodels.CASE_VIEW,))
    routing = RpcProxy("routing")
    limit = IntakeLimitsProvider()
    new_cases = NewCases()
    master_key = privacy.MasterKey()

    def _keys(self) -> privacy.CaseKeys:
        return privacy.CaseKeys(self.db, self.master_key)

    def _view(self, case_id: UUID) -> dict:
        """The citizen's case view as far as it has come."""
        with self.db.transaction() as cursor:
            view, _ = readmodels.read(cursor, case_id)
        return view or NOT_YET_VIEWED

    @on_event_batches("intake")
    def keep_case_view(self, cursor, pairs):
        readmodels.CASE_VIEW.apply(cursor, pairs)
