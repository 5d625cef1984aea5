"""The activity page: cashback granted and receipts booked per day over the last 30 days
(UTC), as two bar charts drawn here in SVG (no script, no library) and as a table.

A day is the day the control plane booked the receipt: a receipt's `received_at` and the
`created_at` of the journals it caused are the same moment, so both series count alike,
and a PoP that uploads late shows its receipts on the day they arrived. Cashback granted is
the `cashback` journals' postings to shoppers' wallets and claim accounts; refunds and claims
are not subtracted (they move what was granted, they do not grant).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, func, literal_column, or_, select
from werkzeug.wrappers import Response

from control_plane import ledger
from control_plane.console import programs
from control_plane.console.signin import signed_in, visitor
from control_plane.console.web import console, money, page
from control_plane.context import control_plane, session
from control_plane.storage.models import Journal, Posting, Receipt

DAYS = 30
# The chart's own units (its viewBox): CSS scales it to the page's width.
WIDTH, HEIGHT, LEFT, RIGHT, BOTTOM, TOP = 480, 220, 64, 24, 26, 12


def _day(column: Any) -> ColumnElement[str]:
    """A stored time's UTC day as YYYY-MM-DD text, on either database (SQLite keeps UTC text;
    PostgreSQL's own date() would use the session's time zone)."""
    if control_plane().db.is_sqlite:
        return func.date(column, type_=String)
    # Constants as SQL, not parameters: GROUP BY must repeat the selected expression exactly,
    # and two bound parameters are two different expressions to PostgreSQL.
    return func.to_char(func.timezone(literal_column("'UTC'"), column),
                        literal_column("'YYYY-MM-DD'"), type_=String)


def daily(merchant_id: int, today: date) -> list[tuple[date, int, int]]:
    """(day, cashback granted in minor units, receipts booked) for each of the last `DAYS`
    days up to `today`, oldest first, days without any included."""
    first = today - timedelta(days=DAYS - 1)
    since = datetime.combine(first, time(), UTC)
    db = session()
    day = _day(Journal.created_at)
    cashback: dict[str, int] = {day_text: int(total) for day_text, total in db.execute(
        select(day, func.sum(Posting.amount))
        .join(Journal, Journal.id == Posting.journal_id)
        .where(Journal.merchant_id == merchant_id, Posting.merchant_id == merchant_id,
               Journal.kind == ledger.CASHBACK, Journal.created_at >= since,
               Posting.amount > 0,
               or_(Posting.account.startswith("customer:"), Posting.account.startswith("claim:")))
        .group_by(day))}
    received = _day(Receipt.received_at)
    receipts: dict[str, int] = {day_text: int(count) for day_text, count in db.execute(
        select(received, func.count(Receipt.id))
        .where(Receipt.merchant_id == merchant_id, Receipt.status == ledger.BOOKED,
               Receipt.received_at >= since)
        .group_by(received))}
    days = [first + timedelta(days=n) for n in range(DAYS)]
    return [(d, cashback.get(d.isoformat(), 0), receipts.get(d.isoformat(), 0)) for d in days]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bar's tooltip: day and value


@dataclass(frozen=True)
class Chart:
    """One series' bars in the chart's viewBox, with its scale's top and tick labels."""

    title: str
    bars: list[Bar]
    top_label: str
    ticks: list[tuple[float, str]]  # (x, day label) under some bars
    width: int = WIDTH
    right: int = WIDTH - RIGHT
    height: int = HEIGHT
    left: int = LEFT
    base: int = HEIGHT - BOTTOM
    plot_top: int = TOP


def _nice(peak: int) -> int:
    """A round number at or above `peak` for the scale's top (1, 2, 5 times a power of 10)."""
    if peak <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= peak:
                return step * factor
        step *= 10


def chart(title: str, days: list[date], values: list[int],
          write: Callable[[int], str]) -> Chart:
    """Bars for `values`, one per day; `write` writes a value as the page shows it."""
    top = _nice(max(values, default=0))
    plot = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - RIGHT) / max(len(values), 1)
    bars = []
    for index, (day, value) in enumerate(zip(days, values, strict=True)):
        height = plot * value / top
        bars.append(Bar(round(LEFT + index * slot + slot * 0.15, 2),
                        round(HEIGHT - BOTTOM - height, 2), round(slot * 0.7, 2),
                        round(height, 2), f"{day.isoformat()}: {write(value)}"))
    # A label a week apart, counted back from today's, which is always labelled.
    ticks = [(round(LEFT + index * slot + slot / 2, 2), day.strftime("%b %d"))
             for index, day in enumerate(days) if (len(days) - 1 - index) % 7 == 0]
    return Chart(title, bars, write(top), ticks)


@console.get("/activity")
@signed_in("read")
def activity() -> Response:
    merchant_id = visitor().merchant_id
    rows = daily(merchant_id, ledger.now().date())
    currency = programs.currency(session(), merchant_id)

    def amount(minor: int) -> str:
        return money(minor, currency)

    days = [day for day, _, _ in rows]
    cashback = [granted for _, granted, _ in rows]
    receipts = [count for _, _, count in rows]
    return page("console/activity.html",
                rows=[(day, amount(granted), count) for day, granted, count in rows],
                charts=[chart("Cashback granted per day", days, cashback, amount),
                        chart("Receipts booked per day", days, receipts, str)],
                first=days[0], last=days[-1], total_cashback=amount(sum(cashback)),
                total_receipts=sum(receipts))
