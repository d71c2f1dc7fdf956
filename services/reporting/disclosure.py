"""Which counts a published report may show: none of 1 to 4 cases may be seen, nor worked
out from the counts shown beside it, in one report or across all the reports a caller
may ask for. Pure: no I/O.

The published counts are cells, each named by a key, tied by sums (a total and its
parts: a district's cases by gender, a province's cases as its districts', ...). A cell
of 1 to 4 is hidden (primary suppression); then, while any hidden cell could still be
worked out, more are hidden (complementary suppression):
- within one sum, a single hidden member follows from the others, and several hidden
  parts beside a shown total give away their sum: so at least two are hidden and the
  hidden parts hold at least five cases together (else the next smallest part goes);
- across sums, a hidden cell can follow from several equations together: every hidden
  cell is checked by exact elimination over all sums, and one that is determined takes
  a neighbour with it.
A zero is never hidden (zeros are shown, so a hidden cell is known to be at least one,
which the rule of five within a sum takes into account)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

SMALL = 5

Key = Hashable


@dataclass(frozen=True)
class Sum:
    """`total` is the sum of `parts`; parts that are zero may be left out."""

    total: Key
    parts: tuple[Key, ...]

    def members(self) -> tuple[Key, ...]:
        return (self.total, *self.parts)


def small(value: int) -> bool:
    return 0 < value < SMALL


def _order(key: Key) -> str:
    return repr(key)


def _safe(one: Sum, hidden: set, counts: Mapping[Key, int]) -> bool:
    held = [k for k in one.members() if k in hidden]
    if not held:
        return True
    if len(held) == 1:
        return False  # the total less the parts shown, or the parts summed
    if one.total in held:
        return True
    return sum(counts.get(k, 0) for k in held) >= SMALL


def _next_to_hide(candidates: Iterable[Key], hidden: set, counts: Mapping[Key, int],
                  fixed: frozenset) -> Key | None:
    """The smallest shown non-zero cell, preferring those not already decided."""
    shown = [k for k in candidates if k not in hidden and counts.get(k, 0) > 0]
    if not shown:
        return None
    return min(shown, key=lambda k: (k in fixed, counts[k], _order(k)))


def determined(hidden: set, sums: Iterable[Sum]) -> set:
    """The hidden cells whose value follows from the shown ones and the sums (exact
    Gauss-Jordan elimination over the hidden cells; shown cells are constants)."""
    pivots: dict[Key, dict[Key, Fraction]] = {}
    for one in sums:
        row: dict[Key, Fraction] = {}
        for key, sign in ((one.total, 1), *((p, -1) for p in one.parts)):
            if key in hidden:
                row[key] = row.get(key, Fraction(0)) + sign
        row = {k: v for k, v in row.items() if v}
        for key in [k for k in row if k in pivots]:
            factor = row.get(key)
            if factor:
                for other, value in pivots[key].items():
                    row[other] = row.get(other, Fraction(0)) - factor * value
                row = {k: v for k, v in row.items() if v}
        if not row:
            continue
        pivot = min(row, key=_order)
        scale = row[pivot]
        row = {k: v / scale for k, v in row.items()}
        for key, other_row in pivots.items():
            factor = other_row.get(pivot)
            if factor:
                for name, value in row.items():
                    other_row[name] = other_row.get(name, Fraction(0)) - factor * value
                pivots[key] = {k: v for k, v in other_row.items() if v}
        pivots[pivot] = row
    return {key for key, row in pivots.items() if len(row) == 1}


def hidden_cells(counts: Mapping[Key, int], sums: Iterable[Sum], *,
                 settled: Iterable[Key] = (), fixed: Iterable[Key] = ()) -> set:
    """The cells to hide. `settled` are hidden already (by an earlier, stabler pass);
    `fixed` are cells whose fate that pass decided: they are hidden now only when
    nothing else will do."""
    sums = [s for s in sums if any(counts.get(k, 0) for k in s.members())]
    fixed = frozenset(fixed)
    hidden = set(settled) | {k for k, v in counts.items() if small(v) and k not in fixed}
    hidden |= {k for k in fixed if small(counts.get(k, 0))}
    touching: dict[Key, list[Sum]] = {}
    for one in sums:
        for key in one.members():
            touching.setdefault(key, []).append(one)
    while True:
        changed = True
        while changed:
            changed = False
            for one in sums:
                while not _safe(one, hidden, counts):
                    held = [k for k in one.members() if k in hidden]
                    # Parts first; the total only when a lone hidden total has no part.
                    more = _next_to_hide(one.parts, hidden, counts, fixed)
                    if more is None and one.total not in held:
                        more = _next_to_hide((one.total,), hidden, counts, fixed)
                    if more is None:
                        break
                    hidden.add(more)
                    changed = True
        found = determined(hidden, sums)
        if not found:
            return hidden
        for key in sorted(found, key=_order):
            more = _nearest_shown(key, touching, hidden, counts, fixed)
            if more is None:  # nothing shown is left that ties to it
                return hidden | {k for k, v in counts.items() if v}
            hidden.add(more)


def _nearest_shown(key: Key, touching: dict, hidden: set, counts: Mapping[Key, int],
                   fixed: frozenset) -> Key | None:
    """The smallest shown cell among the nearest ones tied to `key` by sums: hiding it
    adds an unknown to the equations that determine `key`."""
    seen, frontier = {key}, [key]
    while frontier:
        ring = {k for cell in frontier for one in touching.get(cell, ())
                for k in one.members() if k not in seen}
        more = _next_to_hide(ring, hidden, counts, fixed)
        if more is not None:
            return more
        seen |= ring
        frontier = sorted(ring, key=_order)
    return None
