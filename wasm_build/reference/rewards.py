"""Per-line reward figures of spec 4.4 and 4.5: raw figure, net clamp, instant clamp,
line cap, order cap. Each function returns `{line index: figure}` for the eligible lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from poprules.literals import PPM
from wasm_build.lang.model import Amount, Cap, Percent, PerUnit, Rounding, Value
from wasm_build.reference.arithmetic import allocate, round_ratio


@dataclass(frozen=True)
class Eligible:
    """One eligible line as a reward sees it at its turn."""

    index: int
    qty: int
    net: int
    instant: int  # instant cashback already on the line (for the instant clamp)


def money_figures(value: Value, lines: Sequence[Eligible], rounding: Rounding) -> dict[int, int]:
    """Raw figures of a percent, a fixed amount or a per-unit value, net-clamped."""
    if isinstance(value, Percent):
        return {ln.index: round_ratio(ln.net * value.ppm, PPM, rounding) for ln in lines}
    if isinstance(value, PerUnit):
        return {ln.index: min(ln.qty * value.minor, ln.net) for ln in lines}
    assert isinstance(value, Amount)
    total = min(value.minor, sum(ln.net for ln in lines))
    return allocate(total, [(ln.index, ln.net) for ln in lines])


def free_item_figures(buy: int, get: int, lines: Sequence[Eligible]) -> dict[int, int]:
    """The `get` cheapest units of every full group of buy+get are free (spec 4.4).

    A line's units cost `net // qty`, with the remainder minor units on its first units,
    so a line holds at most two unit prices: no need to expand quantities one by one.
    """
    units = sum(ln.qty for ln in lines)
    free = units // (buy + get) * get
    groups: list[tuple[int, int, int]] = []  # (unit net, -line index, count)
    for ln in lines:
        low, extra = divmod(ln.net, ln.qty)
        groups.append((low, -ln.index, ln.qty - extra))
        if extra:
            groups.append((low + 1, -ln.index, extra))
    figures = {ln.index: 0 for ln in lines}
    for unit_net, neg_index, count in sorted(groups):
        if free == 0:
            break
        taken = min(count, free)
        figures[-neg_index] += taken * unit_net
        free -= taken
    return figures


def points_figures(every: int, award: int, lines: Sequence[Eligible]) -> dict[int, int]:
    total = sum(ln.net for ln in lines) // every * award
    return allocate(total, [(ln.index, ln.net) for ln in lines])


def instant_clamp(figures: dict[int, int], lines: Sequence[Eligible]) -> dict[int, int]:
    """Instant cashback never takes a line's payable below 0; what is clamped off is lost."""
    room = {ln.index: ln.net - ln.instant for ln in lines}
    return {i: min(v, max(room[i], 0)) for i, v in figures.items()}


def apply_caps(figures: dict[int, int], cap: Cap) -> dict[int, int]:
    """cap.line clamps each line; cap.order's cut is allocated in proportion to the
    figures, so no line goes below 0."""
    if cap.line is not None:
        figures = {i: min(v, cap.line) for i, v in figures.items()}
    total = sum(figures.values())
    if cap.order is not None and total > cap.order:
        cuts = allocate(total - cap.order, list(figures.items()))
        figures = {i: v - cuts[i] for i, v in figures.items()}
    return figures
