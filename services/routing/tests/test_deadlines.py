"""Deadline arithmetic on the two calendars."""

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from services.routing.deadlines import (
    PHNOM_PENH,
    Duration,
    RoundTheClock,
    WorkingDays,
    is_holiday,
    policies_from,
)

WORKING = WorkingDays()  # 08:00-12:00 and 14:00-17:00: seven office hours a day


def local(*args) -> datetime:
    return datetime(*args, tzinfo=PHNOM_PENH)


def add(start: datetime, text: str) -> datetime:
    return WORKING.add(start, Duration.parse(text)).astimezone(PHNOM_PENH)


@pytest.mark.parametrize(("text", "days", "seconds"), [
    ("P2D", 2, 0), ("PT4H", 0, 14400), ("PT30M", 0, 1800), ("PT3S", 0, 3), ("P1W", 7, 0),
    ("P1DT2H", 1, 7200), ("PT0.5S", 0, 0.5),
])
def test_iso_8601_durations(text, days, seconds):
    assert Duration.parse(text) == Duration(days, seconds)


@pytest.mark.parametrize("text", ["", "P", "PT", "2D", "P2H", "PT2D", "P-1D", "1 day"])
def test_what_is_not_a_duration_is_refused(text):
    with pytest.raises(ValueError):
        Duration.parse(text)


def test_round_the_clock_counts_every_second():
    start = datetime(2026, 4, 13, 23, 0, tzinfo=UTC)
    assert RoundTheClock().add(start, Duration.parse("P1DT2H")) == start + timedelta(hours=26)
    assert RoundTheClock().elapsed(start, start + timedelta(hours=3)) == 3 * 3600


def test_within_one_office_day():
    assert add(local(2026, 11, 30, 8, 0), "PT3H") == local(2026, 11, 30, 11, 0)
    # Lunch (12:00-14:00) does not count.
    assert add(local(2026, 11, 30, 11, 0), "PT2H") == local(2026, 11, 30, 15, 0)


def test_a_day_is_one_full_office_day():
    assert add(local(2026, 11, 30, 10, 0), "P1D") == local(2026, 12, 1, 10, 0)


def test_weekends_do_not_count():
    friday = local(2026, 12, 4, 10, 0)
    assert add(friday, "P1D") == local(2026, 12, 7, 10, 0)  # Monday
    assert add(friday, "P2D") == local(2026, 12, 8, 10, 0)


def test_out_of_hours_starts_count_from_the_next_opening():
    assert add(local(2026, 11, 30, 18, 30), "PT1H") == local(2026, 12, 1, 9, 0)
    assert add(local(2026, 12, 5, 9, 0), "PT1H") == local(2026, 12, 7, 9, 0)  # a Saturday
    assert add(local(2026, 11, 30, 6, 0), "PT1H") == local(2026, 11, 30, 9, 0)


def test_khmer_new_year_does_not_count():
    assert all(is_holiday(local(2026, 4, d).date()) for d in (14, 15, 16))
    # Monday 13 April 2026 at 16:00, one office day: Tue-Thu are New Year, so Friday 17th.
    assert add(local(2026, 4, 13, 16, 0), "P1D") == local(2026, 4, 17, 16, 0)


def test_pchum_ben_does_not_count():
    # Pchum Ben 2026 falls on 10-12 October (Saturday to Monday).
    assert is_holiday(local(2026, 10, 12).date())
    assert add(local(2026, 10, 9, 16, 0), "PT2H") == local(2026, 10, 13, 9, 0)


def test_a_deadline_that_would_land_on_a_holiday_moves_past_it():
    # Water Festival 2026 is 23-25 November; one office day from Friday 20th at 10:00.
    assert add(local(2026, 11, 20, 10, 0), "P1D") == local(2026, 11, 26, 10, 0)


def test_crossing_into_a_new_year():
    # From Wednesday 30 December: the 31st counts, 1 January is New Year's Day, then the
    # weekend; the second office day is Monday 4 January.
    assert add(local(2026, 12, 30, 15, 0), "P2D") == local(2027, 1, 4, 15, 0)
    assert add(local(2026, 12, 28, 15, 0), "P1D") == local(2026, 12, 30, 15, 0)  # Peace Day


def test_elapsed_counts_office_time_only():
    start, end = local(2026, 12, 4, 16, 0), local(2026, 12, 7, 9, 0)  # Friday to Monday
    assert WORKING.elapsed(start, end) == 2 * 3600
    assert WORKING.elapsed(end, start) == 0


def test_adding_what_elapsed_gives_back_the_end():
    start = local(2026, 4, 10, 9, 30)
    for text in ("PT1H", "P1D", "P3DT4H", "P10D"):
        end = add(start, text)
        duration = Duration.parse(text)
        assert WORKING.elapsed(start, end) == duration.days * WORKING.day_seconds + duration.seconds


def test_the_most_specific_policy_wins():
    policies = policies_from(yaml.safe_load("""
default: {acknowledge: P2D, resolve: P15D}
types: {information: {resolve: P5D}}
categories: {gender-based-violence: {acknowledge: PT4H, calendar: 24x7}}
ombudsman: {resolve: P20D}
"""))
    assert policies.for_case("complaint", "land", False).resolve == Duration(15)
    assert policies.for_case("information", "land", False).resolve == Duration(5)
    gbv = policies.for_case("complaint", "gender-based-violence", False)
    assert (gbv.acknowledge, gbv.resolve, gbv.calendar.name) == (Duration(0, 14400),
                                                                 Duration(15), "24x7")
    assert policies.for_case("complaint", "land", True).resolve == Duration(20)
    assert policies.default.warn_at == 0.75


def test_the_shipped_policy_file_reads():
    from pathlib import Path

    import shared

    path = Path(shared.__file__).parent / "data" / "sla.yaml"
    policies = policies_from(yaml.safe_load(path.read_text()))
    assert policies.default.calendar.name == "working-days"
