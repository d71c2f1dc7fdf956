"""A value every event would read again: kept for its delay, read again after it, and at
once after a change this process projected."""

from contextlib import contextmanager
from types import SimpleNamespace

from shared.remembered import REREAD_SECONDS, Remembered
from shared.store import Projection


class Clock:
    def __init__(self):
        self.at = 100.0

    def __call__(self) -> float:
        return self.at


def test_an_amended_value_is_seen_after_the_delay_and_not_before():
    clock, table = Clock(), {"office": "old address"}
    reads = []

    def read():
        reads.append(clock.at)
        return dict(table)

    kept = Remembered(REREAD_SECONDS, clock=clock)
    assert kept.get(read)["office"] == "old address"
    table["office"] = "new address"  # another instance projected the amendment
    clock.at += REREAD_SECONDS - 0.01
    assert kept.get(read)["office"] == "old address"
    assert reads == [100.0]
    clock.at += 0.01
    assert kept.get(read)["office"] == "new address"
    assert len(reads) == 2


def test_a_change_projected_here_is_seen_at_once():
    clock, table = Clock(), {"webhooks": 1}
    kept = Remembered(REREAD_SECONDS, clock=clock)
    assert kept.get(lambda: dict(table))["webhooks"] == 1
    table["webhooks"] = 2
    kept.forget()
    assert kept.get(lambda: dict(table))["webhooks"] == 2


def test_a_read_under_way_when_a_change_commits_is_not_kept():
    clock, table = Clock(), {"webhooks": 1}
    kept = Remembered(REREAD_SECONDS, clock=clock)

    def read_then_change_commits():
        seen = dict(table)  # the rows as they were before the change
        table["webhooks"] = 2
        kept.forget()
        return seen

    assert kept.get(read_then_change_commits)["webhooks"] == 1
    assert kept.get(lambda: dict(table))["webhooks"] == 2


class Cursor:
    """Stands for a follower's cursor: what a projection's pass writes."""

    def __init__(self):
        self.written = []
        self.connection = self

    @contextmanager
    def pipeline(self):
        yield

    def executemany(self, query, rows):
        self.written += rows


def test_a_projection_forgets_what_it_changed_once_its_pass_committed():
    table = {"address": "old"}
    kept = Remembered(REREAD_SECONDS, clock=Clock())
    kept.get(lambda: dict(table))

    def apply(writes, event):
        if event == "OfficeAmended":
            writes.execute("UPDATE amendments", (event,))

    projection = Projection("amendments", (), apply, changed=kept.forget)
    handle = projection.handler(SimpleNamespace(mapper=SimpleNamespace(
        to_domain_event=lambda notification: notification)))

    handle(Cursor(), ["CaseRouted"])  # nothing of the amendments written
    handle.committed()
    table["address"] = "new"
    assert kept.get(lambda: dict(table))["address"] == "old"
    handle(Cursor(), ["CaseRouted", "OfficeAmended"])
    assert kept.get(lambda: dict(table))["address"] == "old"  # not committed yet
    handle.committed()
    assert kept.get(lambda: dict(table))["address"] == "new"
