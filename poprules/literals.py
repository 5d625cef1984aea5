"""Literal values of the rule language (spec section 2), read exactly.

Every reader returns integers in the unit the system computes with (minor units, parts per
million, seconds) and raises `BadLiteral` with a human message; callers add the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

PPM = 1_000_000


class BadLiteral(ValueError):
    """A literal that does not follow section 2; the message says why."""


_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_PERCENT = re.compile(r"([0-9]+)(?:\.([0-9]+))?%")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DURATION = re.compile(r"([0-9]+)([dhm])")
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(\.[0-9]+)?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DURATION_UNITS = {"d": 86_400, "h": 3_600, "m": 60}


def _scaled(whole: str, frac: str | None, places: int, what: str, text: str) -> int:
    frac = frac or ""
    kept, dropped = frac[:places], frac[places:]
    if dropped.strip("0"):
        raise BadLiteral(f"{text!r} is not a whole number of {what}")
    scale: int = 10**places
    return _digits(whole, text) * scale + int(kept.ljust(places, "0") or "0")


def _digits(digits: str, text: str) -> int:
    """`int()` of a digit string; Python refuses more than 4300 digits with a plain
    ValueError, which must reach callers as the BadLiteral they handle."""
    try:
        return int(digits)
    except ValueError:
        raise BadLiteral(f"{text!r} has too many digits") from None


def parse_amount(text: str, places: int) -> int:
    """`19.90` with 2 places → 1990. No sign, exponent or separators; never rounded."""
    m = _AMOUNT.fullmatch(text)
    if m is None:
        raise BadLiteral(f"{text!r} is not an amount (digits, optionally . and digits)")
    return _scaled(m.group(1), m.group(2), places, "minor units", text)


def parse_percent(text: str) -> int:
    """`12.25%` → 122500 ppm; a whole number of ppm, never rounded."""
    m = _PERCENT.fullmatch(text)
    if m is None:
        raise BadLiteral(f"{text!r} is not a percent (digits, optionally . and digits, then %)")
    return _scaled(m.group(1), m.group(2), 4, "parts per million", text)


def parse_integer(text: str) -> int:
    if _INTEGER.fullmatch(text) is None:
        raise BadLiteral(f"{text!r} is not an integer")
    return _digits(text, text)


def parse_duration(text: str) -> int:
    """`30d` → seconds; a day is exactly 86,400 s."""
    m = _DURATION.fullmatch(text)
    if m is None:
        raise BadLiteral(f"{text!r} is not a duration (an integer and d, h or m, like 30d)")
    return _digits(m.group(1), text) * _DURATION_UNITS[m.group(2)]


def parse_time(text: str, zone: tzinfo, *, allow_fraction: bool = True) -> int:
    """A time literal → Unix seconds (UTC). Local times are read in `zone`: a time in a
    spring-forward gap takes the offset in force before the change, an ambiguous one its
    first occurrence (both are what `fold=0` means in PEP 495)."""
    m = _TIME.fullmatch(text)
    if m is None:
        if _DATE_ONLY.fullmatch(text):
            raise BadLiteral(f"{text!r} is a date; a time needs a time of day (YYYY-MM-DDTHH:MM)")
        raise BadLiteral(f"{text!r} is not a time (YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM])")
    year_, month_, day_, hour_, minute_, second_, fraction, offset = m.groups()
    year, month, day, hour, minute = int(year_), int(month_), int(day_), int(hour_), int(minute_)
    second = int(second_ or 0)
    if fraction and not allow_fraction:
        raise BadLiteral(f"{text!r}: fractions of a second are not allowed here")
    problem = _calendar_problem(year, month, day, hour, minute, second)
    if problem:
        raise BadLiteral(f"{text!r} is not a valid time: {problem}")
    if offset == "Z":
        # The form every checkout sends, in plain arithmetic: a PoP reads one per quote.
        return _days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    local = datetime(year, month, day, hour, minute, second)
    if offset is None:
        aware = local.replace(tzinfo=zone, fold=0)
        delta = aware.utcoffset()
        assert delta is not None
    elif offset == "Z":
        delta = timedelta(0)
    else:
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise BadLiteral(f"{text!r}: offset {offset} is outside -23:59..+23:59")
        delta = timedelta(hours=oh, minutes=om) * (-1 if offset[0] == "-" else 1)
    try:
        naive_utc = local - delta
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first day datetime knows
        raise BadLiteral(f"{text!r} is outside the years 0001 to 9999 in UTC") from None
    return _days_from_civil(naive_utc.year, naive_utc.month, naive_utc.day) * 86_400 + (
        naive_utc.hour * 3600 + naive_utc.minute * 60 + naive_utc.second
    )


def _calendar_problem(year: int, month: int, day: int, hour: int, minute: int,
                      second: int) -> str | None:
    """What is wrong with a date and time of day, in our words: `datetime`'s own messages
    change between Python versions, and every host must report the same error."""
    if year < 1:
        return f"year {year} is out of range"
    if not 1 <= month <= 12:
        return "month must be in 1..12"
    if not 1 <= day <= _month_days(year, month):
        return "day is out of range for month"
    if hour > 23:
        return "hour must be in 0..23"
    if minute > 59:
        return "minute must be in 0..59"
    if second > 59:
        return "second must be in 0..59"
    return None


def _month_days(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


@lru_cache(maxsize=4096)
def format_utc(seconds: int) -> str:
    """Unix seconds → `YYYY-MM-DDTHH:MM:SSZ`; any year (vesting can reach far)."""
    days, rest = divmod(seconds, 86_400)
    y, m, d = _civil_from_days(days)
    hh, rest = divmod(rest, 3600)
    mm, ss = divmod(rest, 60)
    year = f"{y:04d}" if y >= 0 else f"-{-y:04d}"
    return f"{year}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z"


def local_wall_clock(seconds: int, zone: ZoneInfo) -> tuple[int, int]:
    """(weekday 0=Monday, seconds since local midnight) of an instant in `zone`."""
    utc = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    local = utc.astimezone(zone)
    return local.weekday(), local.hour * 3600 + local.minute * 60 + local.second


def format_percent(ppm: int) -> str:
    """122500 → `12.25%`: no trailing zeros."""
    whole, frac = divmod(ppm, 10_000)
    if frac == 0:
        return f"{whole}%"
    return f"{whole}.{f'{frac:04d}'.rstrip('0')}%"
