"""A merchant's throttles on wallet cashback and claims (docs/ledger.md, Throttles).

Three scopes, one row each at most: `customer` (per customer hash), `claim` (per offline
claim token) and `device` (per device hash a claim names). Each has a window in seconds and at
most `max_claims` claims and `max_amount` cashback (minor units) in it. This module holds the
configuration and words the verdict; the ledger counts what was booked, since the counting is
a question about postings. A receipt over a limit is held for review, never dropped and never
booked; a claim over one is refused, to be retried once the window has moved on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from control_plane import audit
from control_plane.coupons import lock_merchant
from control_plane.storage.models import Throttle

CUSTOMER, CLAIM, DEVICE = "customer", "claim", "device"
SCOPES = (CUSTOMER, CLAIM, DEVICE)
MAX_CLAIMS, MAX_AMOUNT = "max_claims", "max_amount"


@dataclass(frozen=True)
class Limit:
    window: int  # seconds
    max_claims: int | None
    max_amount: int | None  # minor units

    def as_json(self) -> dict[str, Any]:
        return {"window": self.window, MAX_CLAIMS: self.max_claims, MAX_AMOUNT: self.max_amount}


def limits(session: Session, merchant_id: int) -> dict[str, Limit]:
    """The merchant's throttles by scope; a scope without one is absent."""
    rows = session.scalars(select(Throttle).where(Throttle.merchant_id == merchant_id))
    return {row.scope: Limit(row.window_seconds, row.max_claims, row.max_amount) for row in rows}


def replace(session: Session, merchant_id: int, new: dict[str, Limit], *,
            actor_token_id: int | None) -> None:
    """Make `new` the merchant's whole configuration (a scope not in it has no throttle) and
    audit it. Serialised per merchant, so two replacements at once cannot both insert a
    scope's row. Throttles are configuration, not ledger: replacing rows is fine here."""
    lock_merchant(session, merchant_id)
    session.execute(delete(Throttle).where(Throttle.merchant_id == merchant_id))
    session.add_all(Throttle(merchant_id=merchant_id, scope=scope, window_seconds=limit.window,
                             max_claims=limit.max_claims, max_amount=limit.max_amount)
                    for scope, limit in new.items())
    audit.record(session, audit.THROTTLE_SET, merchant_id=merchant_id,
                 actor_token_id=actor_token_id, **as_json(new))


def as_json(configured: dict[str, Limit]) -> dict[str, Any]:
    """Every scope, null where there is no throttle."""
    return {scope: configured[scope].as_json() if scope in configured else None
            for scope in SCOPES}


def over(scope: str, what: str, limit: Limit, used: int, adding: int) -> str | None:
    """The hold reason when `used` in the window plus `adding` passes the limit `what`
    (MAX_CLAIMS or MAX_AMOUNT) of `scope`, naming the throttle; None within it or without
    that limit."""
    ceiling = limit.max_claims if what == MAX_CLAIMS else limit.max_amount
    if ceiling is None or used + adding <= ceiling:
        return None
    return (f"throttle {scope}.{what}: {used} in the last {limit.window} s and {adding} more "
            f"would pass {ceiling}")
