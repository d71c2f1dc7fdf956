"""A value every event would read again: kept for its delay, read again after it, and at
once after a change this process projected."""

from shared.remembered import REREAD_SECONDS, Remembered


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
