"""Literal values (spec 2): read exactly, never rounded; times resolved in a zone; formatting."""

from __future__ import annotations

from datetime import UTC as TZ_UTC
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poprules.literals import (
    BadLiteral,
    format_percent,
    format_utc,
    local_wall_clock,
    parse_amount,
    parse_duration,
    parse_integer,
    parse_percent,
    parse_time,
)

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
LISBON = ZoneInfo("Europe/Lisbon")


# --- amounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "places", "minor"),
    [
        ("19.90", 2, 1990),
        ("50", 2, 5000),
        ("0", 2, 0),
        ("0.00", 2, 0),
        ("1.000", 2, 100),
        ("1.0000000000", 2, 100),
        ("007.5", 2, 750),
        ("100.00", 0, 100),
        ("100", 0, 100),
        ("1.005", 3, 1005),
        ("1.5", 3, 1500),
        ("0.0001", 4, 1),
        ("123456789012345678901234567890", 2, 12345678901234567890123456789000),
    ],
)
def test_amounts(text: str, places: int, minor: int) -> None:
    assert parse_amount(text, places) == minor


@pytest.mark.parametrize(
    ("text", "places"),
    [
        ("1.005", 2),
        ("100.5", 0),
        ("0.00001", 4),
        ("-1", 2),
        ("+1", 2),
        ("1e3", 2),
        ("1_000", 2),
        ("1,50", 2),
        ("1.", 2),
        (".5", 2),
        ("", 2),
        (" 1.00", 2),
        ("1.00 ", 2),
        ("1%", 2),
        ("١", 2),  # a digit, but not an ASCII one
        ("9" * 5000, 2),
    ],
)
def test_bad_amounts(text: str, places: int) -> None:
    with pytest.raises(BadLiteral):
        parse_amount(text, places)


@given(st.integers(min_value=0, max_value=10**30), st.sampled_from([0, 2, 3, 4]))
def test_amounts_round_trip(minor: int, places: int) -> None:
    whole, frac = divmod(minor, 10**places)
    text = f"{whole}.{frac:0{places}d}" if places else str(whole)
    assert parse_amount(text, places) == minor
    if places:
        assert parse_amount(text + "000", places) == minor  # trailing zeros are not minor units


# --- percents ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ppm"),
    [
        ("10%", 100_000),
        ("0.5%", 5_000),
        ("12.25%", 122_500),
        ("10.00000%", 100_000),
        ("0.0001%", 1),
        ("0%", 0),
        ("100%", 1_000_000),
        ("250%", 2_500_000),
    ],
)
def test_percents(text: str, ppm: int) -> None:
    assert parse_percent(text) == ppm


@pytest.mark.parametrize("text", ["0.00001%", "10", "10 %", "-1%", "1e1%", "%", "10%%", ".5%",
                                  "9" * 5000 + "%"])
def test_bad_percents(text: str) -> None:
    with pytest.raises(BadLiteral):
        parse_percent(text)


# --- integers and durations --------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("-1", -1), ("+5", 5), ("007", 7),
                                             ("-0", 0), ("12345678901234567890", 12345678901234567890)])
def test_integers(text: str, value: int) -> None:
    assert parse_integer(text) == value


@pytest.mark.parametrize("text", ["", "1.0", "1e3", "1_000", " 1", "--1", "+", "0x10", "٣",
                                  "9" * 5000])
def test_bad_integers(text: str) -> None:
    with pytest.raises(BadLiteral):
        parse_integer(text)


@pytest.mark.parametrize(("text", "seconds"), [("30d", 2_592_000), ("0d", 0), ("12h", 43_200),
                                               ("15m", 900), ("007d", 604_800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "30", "1d12h", "30D", "1w", "30s", "1.5d", "-1d", "+1d",
                                  "d", " 1d", "1 d", "9" * 5000 + "d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(BadLiteral):
        parse_duration(text)


# --- times -------------------------------------------------------------------------------------


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=TZ_UTC).timestamp())


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2026-07-04T10:00:00Z", BERLIN, "2026-07-04T10:00:00"),
        ("2026-07-04T10:00Z", BERLIN, "2026-07-04T10:00:00"),
        ("2026-07-04T10:00", BERLIN, "2026-07-04T08:00:00"),
        ("2026-07-04T10:00", LISBON, "2026-07-04T09:00:00"),
        ("2026-01-04T10:00", LISBON, "2026-01-04T10:00:00"),
        ("2026-07-04T10:00", UTC, "2026-07-04T10:00:00"),
        ("2026-07-04T10:00:30", UTC, "2026-07-04T10:00:30"),
        ("2026-07-04T10:00+01:00", BERLIN, "2026-07-04T09:00:00"),
        ("2026-07-04T10:00-00:00", BERLIN, "2026-07-04T10:00:00"),
        ("2026-07-04T10:00+23:59", UTC, "2026-07-03T10:01:00"),
        ("2026-07-04T10:00-23:59", UTC, "2026-07-05T09:59:00"),
        ("2026-07-04T10:00:30.999", UTC, "2026-07-04T10:00:30"),  # the fraction is dropped
        ("2026-07-04T10:00:30.5Z", UTC, "2026-07-04T10:00:30"),
        ("2026-03-29T02:30", BERLIN, "2026-03-29T01:30:00"),  # the gap: lands after it
        ("2026-03-29T02:00", BERLIN, "2026-03-29T01:00:00"),
        ("2026-03-29T03:00", BERLIN, "2026-03-29T01:00:00"),
        ("2026-10-25T02:30", BERLIN, "2026-10-25T00:30:00"),  # ambiguous: the first one
        ("2026-10-25T03:00", BERLIN, "2026-10-25T02:00:00"),
        ("2028-02-29T00:00Z", UTC, "2028-02-29T00:00:00"),
        ("2000-02-29T00:00Z", UTC, "2000-02-29T00:00:00"),
        ("1969-12-31T23:59:59Z", UTC, "1969-12-31T23:59:59"),
        ("9999-12-31T23:59:59Z", UTC, "9999-12-31T23:59:59"),
        ("0001-01-01T00:00Z", UTC, "0001-01-01T00:00:00"),
    ],
)
def test_times(text: str, zone: ZoneInfo, expected: str) -> None:
    assert parse_time(text, zone) == utc(expected)


@pytest.mark.parametrize(
    "text",
    [
        "2026-07-04",  # a date alone
        "2026-07-04T10",
        "2026-07-04 10:00",
        "2026-07-04t10:00",
        "2026-07-04T10:00z",
        "2026-7-4T10:00",
        "2026-07-04T1:00",
        "26-07-04T10:00",
        "2026-02-30T10:00",  # no such day
        "2026-02-29T10:00",  # not a leap year
        "1900-02-29T10:00",
        "2026-13-01T10:00",
        "2026-00-01T10:00",
        "2026-07-00T10:00",
        "2026-07-04T24:00",
        "2026-07-04T10:60",
        "2026-07-04T10:00:60",
        "2026-07-04T10:00+24:00",
        "2026-07-04T10:00-24:00",
        "2026-07-04T10:00+01:60",
        "2026-07-04T10:00+0100",
        "2026-07-04T10:00+01",
        "2026-07-04T10:00.5",
        "2026-07-04T10:00:00.",
        "0000-01-01T10:00Z",
        "0001-01-01T00:00+01:00",  # before the first instant the calendar can write
        "9999-12-31T23:59-00:01",
        " 2026-07-04T10:00",
        # the same mistakes in the UTC form, which is read by plain arithmetic
        "2026-02-30T10:00:00Z",
        "2026-02-29T10:00:00Z",
        "1900-02-29T10:00:00Z",
        "2026-04-31T10:00:00Z",
        "2026-13-01T10:00:00Z",
        "2026-00-01T10:00:00Z",
        "2026-07-00T10:00:00Z",
        "2026-07-04T24:00:00Z",
        "2026-07-04T10:60:00Z",
        "2026-07-04T10:00:60Z",
        "0000-06-01T10:00:00Z",
    ],
)
def test_bad_times(text: str) -> None:
    with pytest.raises(BadLiteral):
        parse_time(text, BERLIN)


def test_fraction_can_be_refused() -> None:
    assert parse_time("2026-07-04T10:00:30", UTC, allow_fraction=False) == utc(
        "2026-07-04T10:00:30")
    with pytest.raises(BadLiteral):
        parse_time("2026-07-04T10:00:30.0", UTC, allow_fraction=False)


def test_date_alone_has_its_own_message() -> None:
    with pytest.raises(BadLiteral, match="date"):
        parse_time("2026-07-04", UTC)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_utc_times_round_trip_through_format_utc(moment: datetime) -> None:
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"
    assert format_utc(parse_time(text, BERLIN)) == text


# --- formatting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59Z"),
        (1_783_159_200, "2026-07-04T10:00:00Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
        (253_402_300_800, "10000-01-01T00:00:00Z"),
        (1_000_000_000_000, "33658-09-27T01:46:40Z"),
        (-62_135_596_800, "0001-01-01T00:00:00Z"),
        (-62_135_596_801, "0000-12-31T23:59:59Z"),
        (-62_167_219_201, "-0001-12-31T23:59:59Z"),
    ],
)
def test_format_utc(seconds: int, text: str) -> None:
    assert format_utc(seconds) == text


@given(st.integers(min_value=-(10**13), max_value=10**13))
def test_format_utc_agrees_with_datetime_where_it_can(seconds: int) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=TZ_UTC)
    try:
        moment = epoch + timedelta(seconds=seconds)
    except OverflowError:
        assert format_utc(seconds).endswith("Z")  # beyond datetime: still written
        return
    assert format_utc(seconds) == f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"


@pytest.mark.parametrize(
    ("ppm", "text"),
    [(100_000, "10%"), (122_500, "12.25%"), (5_000, "0.5%"), (1, "0.0001%"), (0, "0%"),
     (1_000_000, "100%"), (2_500_000, "250%"), (10, "0.001%"), (100_010, "10.001%")],
)
def test_format_percent(ppm: int, text: str) -> None:
    assert format_percent(ppm) == text


@given(st.integers(min_value=0, max_value=10**12))
def test_format_percent_round_trips(ppm: int) -> None:
    text = format_percent(ppm)
    assert parse_percent(text) == ppm
    if "." in text:
        assert not text.removesuffix("%").endswith("0")


def test_local_wall_clock() -> None:
    # 2026-07-04 is a Saturday; 10:00Z is 12:00 in Berlin.
    assert local_wall_clock(utc("2026-07-04T10:00:00"), BERLIN) == (5, 12 * 3600)
    # Friday 23:30Z is already Saturday 00:30 in Berlin (summer).
    assert local_wall_clock(utc("2026-07-03T22:30:00"), BERLIN) == (5, 1800)
    assert local_wall_clock(utc("2026-07-03T17:59:59"), UTC) == (4, 17 * 3600 + 3599)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_utc_times_agree_with_the_calendar(moment: datetime) -> None:
    """The UTC form skips datetime; it must still count every leap day as the calendar does."""
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"
    expected = (moment - datetime(1970, 1, 1)) // timedelta(seconds=1)
    assert parse_time(text, BERLIN) == expected
