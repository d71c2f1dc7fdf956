"""Routing: sends each case to its office, keeps the offices' queues and deadlines, and
takes what is late or appealed to the ombudsman.

The nameko adapter: the entrypoints, by caller, are in the mixins (actions.py for the
office's commands, casefile.py for what it reads, sessions.py for staff logins,
console.py for the console's files, desk.py for cases staff record for citizens,
rpc.py for other services); here are what intake's events and the clock start, and the
directory they all read."""

from __future__ import annotations

import unicodedata

from nameko.timer import timer

from services.routing import readmodels
from services.routing.actions import Actions
from services.routing.application import Routing, policies
from services.routing.casefile import CaseFiles
from services.routing.commands import COMMANDS
from services.routing.console import Console
from services.routing.desk import Desk
from services.routing.directory import amended, base_directory, follow_merges
from services.routing.history import HISTORY
from services.routing.rpc import Answers
from services.routing.schemas import OfficeOut, OfficesQuery
from services.routing.sessions import Sessions
from shared import access, clock
from shared.consumer import on_recorded_batches
from shared.db import DatabaseProvider, tracking_ddl
from shared.settings import settings
from shared.store import EventStore
from shared.web import HealthAndSpec, endpoint

__all__ = ["Routing", "Service", "policies"]

# Built now, as the service starts, rather than on the first case it routes (building the
# 2,132 offices from the administrative units takes most of a second).
base_directory()


def name_matches(office, words: str) -> bool:
    """Whether a part of a name, as someone types it, is in the office's English or
    Khmer name: any case, Khmer in either of its code point orders."""
    wanted = unicodedata.normalize("NFC", words).casefold().strip()
    return any(wanted in unicodedata.normalize("NFC", name).casefold()
               for name in (office.name_en, office.name_km))


class Service(Actions, CaseFiles, Desk, Sessions, Console, Answers, HealthAndSpec):
    name = "routing"
    title = "Our Voice routing"
    commands = COMMANDS

    store = EventStore(Routing, projections=readmodels.PROJECTIONS)
    # Its part of a case's history, read from that store (see shared/history.py).
    history = HISTORY
    db = DatabaseProvider(tracking_ddl("routing"))

    # -- the directory ---------------------------------------------------------------
    def directory(self) -> dict:
        """The directory with operators' amendments, kept in memory (see
        shared/remembered.py): amendments are rare and every routed case needs it."""
        return readmodels.DIRECTORY.get(self._read_directory)

    def _read_directory(self) -> dict:
        with self.db.transaction() as cursor:
            return amended(base_directory(), readmodels.load_amendments(cursor))

    @endpoint("GET", "/v1/offices", allow=(access.PUBLIC,), query=OfficesQuery,
              response=OfficeOut(many=True))
    def list_offices(self, request, query):
        """The office directory; filter by `level`, `kind`, `province`, `district`, and
        `q`, part of a Khmer or English name (the transfer picker's search)."""
        filters = {k: query.get(k) for k in ("level", "kind", "province", "district")}
        offices = [
            office.as_dict() for office in self.directory().values()
            if all(not wanted or getattr(office, key) == wanted
                   for key, wanted in filters.items())
            and (not query.get("q") or name_matches(office, query["q"]))
        ]
        return OfficeOut(many=True).dump(sorted(offices, key=lambda o: o["id"]))

    # -- events from other services --------------------------------------------------
    @on_recorded_batches("routing")
    def take_events(self, taken):
        """What intake's events call for (routings of new cases, the citizens' answers
        on theirs): a batch per transaction. Those of cases not routed yet wait."""
        waiting = self.store.take_all(
            taken, redirect=lambda office: follow_merges(self.directory(), office))
        return {tracking: str(reason) for tracking, reason in waiting}

    # -- time ------------------------------------------------------------------------
    # The runner checked the settings before this module was imported.
    @timer(interval=settings().sweep_seconds)
    def sweep_deadlines(self):
        """Record the warnings and breaches now due (the deadline timers say which)."""
        now = clock.now()
        readmodels.count_open_cases(self.db)
        with self.db.transaction() as cursor:
            due = readmodels.due_cases(cursor, now, limit=500)
        self.store.check_deadlines(due, now)
