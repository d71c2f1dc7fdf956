"""The sender's timer ticks twenty times a second; a tick while nothing can be due costs
no database transaction, and a change of the outbox or the soonest next try ends the
rest at once."""

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from eventlet.greenpool import GreenPool

from services.notifications import readmodels, sender
from services.notifications.domain import CHANNELS
from services.notifications.sender import Sender


class Outbox:
    """Stands for the outbox table: nothing is due; `next_at` is the soonest next try."""

    def __init__(self):
        self.next_at = None
        self.transactions = 0
        self.rows = []

    def execute(self, statement, params=()):
        self.rows = [{"next_at": self.next_at}] if "min(next_at)" in statement else []

    def fetchall(self):
        return self.rows

    def fetchone(self):
        return self.rows[0]

    @contextmanager
    def transaction(self):
        self.transactions += 1
        yield self


@pytest.fixture
def clock(monkeypatch):
    now = [datetime(2026, 12, 3, 9, 0, tzinfo=UTC)]
    monkeypatch.setattr(sender.clock, "now", lambda: now[0])
    return now


@pytest.fixture
def outbox():
    return Outbox()


@pytest.fixture
def idle(outbox):
    one = Sender()
    one.pools = {channel: GreenPool(2) for channel in CHANNELS}
    one.in_flight, one.done = {}, {}
    one.secrets_sealed = True
    one.quiet_until, one.poll_seconds = None, 1.0
    readmodels.OUTBOX_CHANGED.clear()

    def tick() -> int:
        before = outbox.transactions
        assert one.deliver(store=None, db=outbox, intake=None, routing=None) == 0
        return outbox.transactions - before

    return tick


def test_ticks_with_nothing_due_cost_one_transaction_a_poll_interval(idle, clock):
    assert idle() == 1
    assert [idle() for _ in range(10)] == [0] * 10
    clock[0] += timedelta(seconds=1)
    assert idle() == 1
    assert idle() == 0


def test_a_change_of_the_outbox_ends_the_rest(idle, clock):
    assert idle() == 1
    readmodels.OUTBOX_CHANGED.set()  # the outbox projection committed a new delivery
    assert idle() == 1
    assert idle() == 0


def test_a_try_due_before_the_poll_interval_is_looked_for_when_due(idle, outbox, clock):
    outbox.next_at = clock[0] + timedelta(seconds=0.3)  # a retry's backoff runs out
    assert idle() == 1
    clock[0] += timedelta(seconds=0.2)
    assert idle() == 0
    clock[0] += timedelta(seconds=0.1)
    assert idle() == 1
