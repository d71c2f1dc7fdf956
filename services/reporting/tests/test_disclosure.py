"""Suppression as a pure function: no count of 1 to 4 is shown or follows from the
counts that are, within one breakdown or across linked ones."""

from services.reporting.disclosure import Sum, determined, hidden_cells
from services.reporting.figures import HIDDEN, Fact, Reader, table


def test_the_finding_a_lone_small_cell_beside_its_total_and_zeros_hides_the_total():
    counts = {"total": 1, "female": 1}
    hidden = hidden_cells(counts, [Sum("total", ("female", "male", "other"))])
    assert hidden == {"total", "female"}


def test_one_small_cell_takes_the_next_smallest_with_it():
    counts = {"total": 15, "female": 6, "male": 7, "other": 2}
    hidden = hidden_cells(counts, [Sum("total", ("female", "male", "other"))])
    assert hidden == {"other", "female"}
    assert not determined(hidden, [Sum("total", ("female", "male", "other"))])


def test_hidden_parts_that_add_up_to_fewer_than_five_take_another():
    # male + other = 2 would be a count of two, given away by subtraction.
    counts = {"total": 20, "female": 8, "male": 1, "other": 1, "undisclosed": 10}
    hidden = hidden_cells(counts, [Sum("total", ("female", "male", "other", "undisclosed"))])
    assert hidden == {"male", "other", "female"}


def test_a_cell_hidden_in_two_breakdowns_is_not_found_by_combining_them():
    # A 2x2 table with margins: hiding one row's two cells would leave both columns
    # with one hidden cell each; elimination finds it and a whole rectangle goes.
    cells = {("a", "x"): 3, ("a", "y"): 9, ("b", "x"): 8, ("b", "y"): 7}
    counts = {**cells, "a": 12, "b": 15, "x": 11, "y": 16, "all": 27}
    sums = [Sum("a", (("a", "x"), ("a", "y"))), Sum("b", (("b", "x"), ("b", "y"))),
            Sum("x", (("a", "x"), ("b", "x"))), Sum("y", (("a", "y"), ("b", "y"))),
            Sum("all", ("a", "b")), Sum("all", ("x", "y"))]
    hidden = hidden_cells(counts, sums)
    assert ("a", "x") in hidden and not determined(hidden, sums)
    assert hidden == set(cells)


def test_elimination_finds_what_each_sum_alone_does_not():
    sums = [Sum("t1", ("p", "q")), Sum("t2", ("p", "q", "r")), Sum("t3", ("r", "s"))]
    # t2 less t1 gives r, though r hides beside two others in t2 and one in t3...
    assert determined({"p", "q", "r", "s"}, sums) == {"r", "s"}
    # ...unless t1 is hidden too.
    assert determined({"p", "q", "r", "s", "t1"}, sums) == set()


def test_a_province_less_its_shown_districts_gives_nothing_away():
    facts = [Fact("1201", "commune-120101", "cases") for _ in range(9)]
    facts += [Fact("1202", "commune-120201", "cases") for _ in range(3)]
    facts += [Fact("1701", "commune-170101", "cases") for _ in range(8)]
    decided = table(facts)
    country = Reader(decided).report("2026-11")
    province = Reader(decided, "12").report("2026-11")
    assert province["by_district"]["1202"] is HIDDEN
    # 12 less 1201 would give 1202: so 1201 goes too, and the province with it.
    assert province["by_district"]["1201"] is HIDDEN
    assert province["total"] is HIDDEN or country["by_province"]["17"] is HIDDEN


def test_derived_figures_need_five_cases_and_a_shown_count():
    facts = [Fact("1201", "o1", "feedback", "satisfied", measure=5) for _ in range(3)]
    facts += [Fact("1201", "o1", "feedback", "", measure=5) for _ in range(3)]
    report = Reader(table(facts), "1201").report("2026-11")
    assert report["satisfaction"] == {"responses": HIDDEN, "satisfied": HIDDEN,
                                      "satisfied_share": HIDDEN, "mean_rating": HIDDEN}


def test_a_scorecard_hides_what_its_counts_hide_and_auditors_see_it_whole():
    cases = [Fact("1201", "commune-120101", "cases") for _ in range(10)]
    late = [Fact("1201", "commune-120101", "acknowledged_late") for _ in range(2)]
    met = [Fact("1201", "commune-120101", "acknowledged_on_time") for _ in range(8)]
    other = [Fact("1201", "commune-120109", "cases") for _ in range(6)]
    other += [Fact("1201", "commune-120109", "acknowledged_on_time") for _ in range(6)]
    facts = cases + late + met + other
    public = Reader(table(facts), office="commune-120101").scorecard()
    assert public["acknowledged_late"] is HIDDEN  # two: and the share would tell them
    assert public["acknowledged_on_time_share"] is HIDDEN
    assert public["on_time_share"] is HIDDEN
    whole = Reader(table(facts, suppress=False), office="commune-120101", whole=True).scorecard()
    assert (whole["acknowledged_on_time"], whole["acknowledged_late"]) == (8, 2)
    assert whole["acknowledged_on_time_share"] == whole["on_time_share"] == 0.8
    assert whole["resolved_on_time_share"] is None  # nothing decided yet
    punctual = Reader(table(facts, suppress=False), office="commune-120109",
                      whole=True).scorecard()
    assert punctual["on_time_share"] == 1.0


def test_every_channel_is_counted_and_a_small_one_held_back_like_gender():
    cases = [Fact("1201", "o1", "cases") for _ in range(12)]
    channels = [Fact("1201", "o1", "channel", "app") for _ in range(7)]
    channels += [Fact("1201", "o1", "channel", "sms") for _ in range(3)]
    channels += [Fact("1201", "o1", "channel", "office-desk") for _ in range(2)]
    facts = cases + channels
    public = Reader(table(facts), "1201").report("2026-11")["by_channel"]
    assert list(public) == ["app", "open311", "sms", "telegram", "office-desk"]
    assert (public["open311"], public["telegram"]) == (0, 0)  # none: nothing to hide
    assert public["sms"] is HIDDEN and public["office-desk"] is HIDDEN
    # Two small cells hidden together: the seven beside the total then tells neither.
    assert public["app"] == 7
    whole = Reader(table(facts, suppress=False), "1201", whole=True).report("2026-11")
    assert whole["by_channel"] == {"app": 7, "open311": 0, "sms": 3, "telegram": 0,
                                   "office-desk": 2}
