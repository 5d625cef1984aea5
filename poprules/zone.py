"""A time zone as a table of UTC offsets, so hosts need no tz database (spec 2, issue 4).

The compiler writes the zone's transitions into the release; the rule module reads local
wall-clock time from them, and the edge core reads local request times with `TableZone`, a
`tzinfo` over the same table, so every host agrees with the module to the second.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo

_EPOCH = datetime(1970, 1, 1)


class TableZone(tzinfo):
    """`transitions` are (UTC start in Unix seconds, offset in seconds), ascending; the first
    one's start is ignored (its offset holds before the second)."""

    def __init__(self, name: str, transitions: Sequence[tuple[int, int]]) -> None:
        if not transitions:
            raise ValueError("a zone needs at least one offset")
        self.name = name
        starts = [start for start, _ in transitions[1:]]
        self.offsets = [offset for _, offset in transitions]
        # A local wall-clock time L reads with the offset after transition i once
        # L >= start_i + max(before, after): inside a gap or an overlap it keeps the offset
        # before the change (spec 2: after the gap, first occurrence).
        self.local_starts = [
            start + max(self.offsets[i], self.offsets[i + 1]) for i, start in enumerate(starts)
        ]
        if self.local_starts != sorted(self.local_starts):
            raise ValueError(f"{name}: transitions closer together than their offset changes")

    def offset_for_local(self, local: int) -> int:
        """The offset that reads a local wall-clock time (as seconds since 1970-01-01)."""
        return self.offsets[bisect_right(self.local_starts, local)]

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return timedelta(0)
        local = int((dt.replace(tzinfo=None) - _EPOCH).total_seconds())
        return timedelta(seconds=self.offset_for_local(local))

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return self.name
