"""Group commit for new cases.

Appends to an event store are serialised (one table lock per transaction, so that
notification ids follow commit order), and each one waits for its own flush to disk.
Submissions that arrive while an append is under way are therefore recorded together in
the next transaction: one lock and one flush for all of them. Nobody waits on a timer;
a submission alone is recorded at once."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError
from nameko.extensions import DependencyProvider

from shared.store import CaseStore, EventStore

MAX_BATCH = 200


@dataclass
class _Pending:
    events: list[Any]
    done: bool = False
    recorded: bool = False
    error: BaseException | None = field(default=None)


class GroupCommit:
    def __init__(self, store: CaseStore):
        self.store = store
        self.pending: list[_Pending] = []
        self.committing = threading.Lock()  # green under eventlet

    def record_new(self, case: Any) -> bool:
        """Record a new case; False when a case with its id exists already."""
        item = _Pending(events=list(case.collect_events()))
        self.pending.append(item)
        with self.committing:
            # Whoever committed before us may have taken our case along.
            while not item.done:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                self._commit(batch)
        if item.error is not None:
            raise item.error
        return item.recorded

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            self.store.events.put([e for item in batch for e in item.events])
            for item in batch:
                item.recorded = True
        except IntegrityError:
            # One case of the batch exists already (a retry): find which, one by one.
            for item in batch:
                try:
                    self.store.events.put(item.events)
                    item.recorded = True
                except IntegrityError:
                    item.recorded = False
                except Exception as error:
                    item.error = error
        except Exception as error:
            for item in batch:
                item.error = error
        finally:
            for item in batch:
                item.done = True


class NewCases(DependencyProvider):
    """The service's group commit on its own event store."""

    def setup(self) -> None:
        self.group: GroupCommit | None = None

    def get_dependency(self, worker_ctx) -> GroupCommit:
        if self.group is None:
            store = next(d.store for d in self.container.dependencies
                         if isinstance(d, EventStore))
            self.group = GroupCommit(store)
        return self.group
