"""Whether a rule's `active` schedule holds at an instant (spec section 3)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from poprules.literals import local_wall_clock
from wasm_build.lang.model import Schedule


def is_active(schedule: Schedule | None, at: int, zone: ZoneInfo) -> bool:
    if schedule is None:
        return True
    if schedule.start is not None and at < schedule.start:
        return False
    if schedule.until is not None and at >= schedule.until:
        return False
    if schedule.days is None and schedule.hours is None:
        return True
    weekday, seconds = local_wall_clock(at, zone)
    days = schedule.days
    if schedule.hours is None:
        return days is None or weekday in days
    start, end = schedule.hours
    if start < end:
        return start <= seconds < end and (days is None or weekday in days)
    # A window that wraps midnight belongs to the day on which it starts.
    if seconds >= start:
        return days is None or weekday in days
    if seconds < end:
        return days is None or (weekday - 1) % 7 in days
    return False
