"""Exact money arithmetic of spec 4.2 and 4.3: rounding modes and largest-remainder
allocation, on integers only, so every host can reproduce them to the minor unit."""

from __future__ import annotations

from collections.abc import Sequence

from wasm_build.lang.model import Rounding


def round_ratio(numerator: int, denominator: int, mode: Rounding) -> int:
    """round(numerator / denominator) for numerator ≥ 0, denominator > 0, in `mode`."""
    q, r = divmod(numerator, denominator)
    if mode is Rounding.DOWN or 2 * r < denominator:
        return q
    if 2 * r > denominator:
        return q + 1
    if mode is Rounding.HALF_UP:
        return q + 1
    return q + (q & 1)  # half_even: ties go to the even neighbour


def allocate(total: int, weights: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Spread `total` over `(line index, weight)` pairs in proportion to the weights.

    Each line gets the floor of its exact share; the units left over go one each to the
    largest remainders, ties to the lower line index. Shares always add up to `total`, and
    no line gets more than its weight when `total` does not exceed the weights' sum.
    """
    weight_sum = sum(w for _, w in weights)
    if weight_sum == 0:
        return {index: 0 for index, _ in weights}
    shares: dict[int, int] = {}
    remainders: list[tuple[int, int]] = []
    for index, weight in weights:
        share, remainder = divmod(total * weight, weight_sum)
        shares[index] = share
        remainders.append((-remainder, index))
    left = total - sum(shares.values())
    for _, index in sorted(remainders)[:left]:
        shares[index] += 1
    return shares
