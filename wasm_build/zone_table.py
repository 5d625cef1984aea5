"""Precompute a zone's UTC offsets for a release's lifetime (issue 4): the module and the
edge core read local time from this table instead of a tz database."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

#: The window the table covers. Outside it the offset at its nearest edge holds.
FIRST_YEAR = 1970
LAST_YEAR = 2100  # exclusive

_DAY = 86_400


def _offset(zone: ZoneInfo, utc: int) -> int:
    moment = datetime.fromtimestamp(utc, UTC).astimezone(zone)
    delta = moment.utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


@lru_cache(maxsize=64)
def transitions(name: str) -> tuple[tuple[int, int], ...]:
    """(UTC start, offset) pairs, ascending; the first starts at the window's start.

    Offsets are sampled daily and each change is found to the second by bisection: zones
    change their offset at most a few times a year, never twice within a day.
    """
    zone = ZoneInfo(name)
    start = int(datetime(FIRST_YEAR, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(LAST_YEAR, 1, 1, tzinfo=UTC).timestamp())
    table = [(start, _offset(zone, start))]
    t, current = start, table[0][1]
    while t < end:
        nxt = min(t + _DAY, end)
        offset = _offset(zone, nxt)
        if offset != current:
            lo, hi = t, nxt  # offset(lo) == current, offset(hi) != current
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(zone, mid) == current:
                    lo = mid
                else:
                    hi = mid
            table.append((hi, _offset(zone, hi)))
            current = table[-1][1]
        t = nxt
    return tuple(table)
