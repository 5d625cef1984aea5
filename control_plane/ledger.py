"""The wallet ledger: double-entry and append-only (docs/ledger.md).

Every movement is a journal whose postings sum to zero, money and points never in one journal.
Nothing is updated or deleted: a refund is a journal of opposite postings, a claim a journal
that moves cashback from a claim token's account to a customer's. Balances are sums of
postings, computed when asked, so no stored balance can disagree with the entries.

Accounts: `customer:<hash>:wallet|credit|points`, `claim:<token hash>:wallet` (cashback an
anonymous shopper may claim with the offline token a checkout showed) and
`merchant:cashback|credit|points`, the merchant's side. A customer is known only by the keyed
hash of the shop's id (coupon_key.customer_hash), the customer token's `sub`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import ColumnElement, CursorResult, func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from control_plane import audit, throttles
from control_plane.coupons import lock_merchant
from control_plane.errors import ApiError
from control_plane.storage.models import AuditEvent, ClaimToken, Journal, Posting, Receipt
from control_plane.wire import format_time

# Journal kinds.
CASHBACK, CREDIT, POINTS, REVERSAL, CLAIM = "cashback", "credit", "points", "reversal", "claim"
WALLET = "wallet"  # the customer account of cashback (CREDIT and POINTS name the others)
MERCHANT_CASHBACK, MERCHANT_CREDIT, MERCHANT_POINTS = (
    "merchant:cashback", "merchant:credit", "merchant:points")
BOOKED = "booked"  # Receipt.status
LAPSING_SOON = timedelta(days=7)
EPOCH, NEVER = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)  # for sorting
REFERRER_UNKNOWN = "referrer unknown"
CLOCK = "POPRULES_CLOCK"  # app config: a callable giving the aware UTC time, for tests


def customer_account(customer: str, what: str) -> str:
    return f"customer:{customer}:{what}"


def claim_account(token_hash: str) -> str:
    return f"claim:{token_hash}:wallet"


def claim_hash(token: str) -> str:
    """How receipts and ClaimToken rows name a claim token: its SHA-256 (the token is a
    signed, unguessable string, so a plain hash keeps it from being replayed off the DB)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def now() -> datetime:
    """The control plane's time for the ledger: the app's `POPRULES_CLOCK` if set (tests
    move it to watch cashback vest and lapse), else the system clock."""
    clock = current_app.config.get(CLOCK)
    moment: datetime = clock() if clock is not None else datetime.now(UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Leg:
    """One posting before it is written."""

    account: str
    amount: int
    rule: str | None = None
    toward: str | None = None
    vests_at: datetime | None = None
    lapses_at: datetime | None = None


@dataclass(frozen=True)
class Planned:
    kind: str
    legs: list[Leg]


class ClaimHeld(Exception):
    """A claim over a throttle: refused and its `claim.refused` event added to the session,
    which the caller commits (nothing else was written) before answering 429."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _pair(account: str, amount: int, counter: str, **details: Any) -> list[Leg]:
    return [Leg(account, amount, **details), Leg(counter, -amount, **details)]


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def _post(session: Session, merchant_id: int, plan: Planned, receipt_id: int | None,
          at: datetime) -> Journal:
    if sum(leg.amount for leg in plan.legs) != 0:
        raise ValueError(f"an unbalanced {plan.kind} journal: {plan.legs}")
    journal = Journal(merchant_id=merchant_id, kind=plan.kind, receipt_id=receipt_id,
                      created_at=at)
    session.add(journal)
    session.add_all(Posting(journal=journal, merchant_id=merchant_id, account=leg.account,
                            amount=leg.amount, rule=leg.rule, toward=leg.toward,
                            vests_at=leg.vests_at, lapses_at=leg.lapses_at)
                    for leg in plan.legs)
    return journal


def book(session: Session, receipt: Receipt, fields: dict[str, Any],
         at: datetime) -> str | None:
    """Book a verified receipt (its decoded `fields`) in the caller's transaction at time
    `at`: None when booked, else why it must be held — nothing is written then."""
    if receipt.id is None:
        session.flush()
    if fields["kind"] == "refund":
        return _book_refund(session, receipt, fields, at)
    return _book_sale(session, receipt, fields, at)


def _book_sale(session: Session, receipt: Receipt, fields: dict[str, Any],
               at: datetime) -> str | None:
    """Cashback to the customer, to the referrer, or — for a shopper who stayed anonymous
    but took a claim token — to the token's account; credits and points to a known customer
    only (an anonymous sale without a claim token books nothing: the shopper chose so)."""
    quote, customer, claim = fields["quote"], fields.get("customer"), fields.get("claim")
    plans: list[Planned] = []
    for entry in quote.get("wallet") or []:
        if entry.get("to") == "referrer":
            if fields.get("referrer") is None:
                return REFERRER_UNKNOWN
            account = customer_account(fields["referrer"], WALLET)
        elif customer is not None:
            account = customer_account(customer, WALLET)
        elif claim is not None:
            account = claim_account(claim)
        else:
            continue
        plans.append(Planned(CASHBACK, _pair(
            account, entry["amount"], MERCHANT_CASHBACK, rule=entry["rule"],
            vests_at=_time(entry["vests_at"]), lapses_at=_time(entry.get("lapses_at")))))
    if customer is not None:
        checkout = datetime.fromtimestamp(fields["at"], UTC)  # a credit vests at checkout
        for credit in quote.get("credits") or []:
            plans.append(Planned(CREDIT, _pair(
                customer_account(customer, CREDIT), credit["amount"], MERCHANT_CREDIT,
                rule=credit["rule"], toward=credit["toward"], vests_at=checkout,
                lapses_at=_time(credit.get("lapses_at")))))
        if quote["totals"]["points"]:
            plans.append(Planned(POINTS, _pair(customer_account(customer, POINTS),
                                               quote["totals"]["points"], MERCHANT_POINTS)))
    claimable = customer is None and claim is not None
    if claimable and session.scalar(select(ClaimToken.id).where(
            ClaimToken.merchant_id == receipt.merchant_id,
            ClaimToken.token_hash == claim)) is not None:
        return f"claim token {claim} is on another receipt already"
    reason = _throttle_booking(session, receipt.merchant_id, plans, at)
    if reason is not None:
        return reason
    for plan in plans:
        _post(session, receipt.merchant_id, plan, receipt.id, at)
    if claimable:
        session.add(ClaimToken(merchant_id=receipt.merchant_id, token_hash=claim,
                               receipt_id=receipt.id))
    return None


def _throttle_booking(session: Session, merchant_id: int, plans: list[Planned],
                      at: datetime) -> str | None:
    adding: dict[str, int] = defaultdict(int)
    for plan in plans:
        if plan.kind == CASHBACK:
            adding[plan.legs[0].account] += plan.legs[0].amount
    configured = throttles.limits(session, merchant_id) if adding else {}
    if not any(limit.max_amount is not None for limit in configured.values()):
        return None
    lock_merchant(session, merchant_id)  # so that two receipts at once count each other
    for account, amount in adding.items():
        scope = throttles.CLAIM if account.startswith("claim:") else throttles.CUSTOMER
        limit = configured.get(scope)
        if limit is None or limit.max_amount is None:
            continue
        used = booked_cashback(session, merchant_id, account, at - timedelta(seconds=limit.window))
        reason = throttles.over(scope, throttles.MAX_AMOUNT, limit, used, amount)
        if reason is not None:
            return reason
    return None


def booked_cashback(session: Session, merchant_id: int, account: str, since: datetime) -> int:
    """Cashback booked or claimed to `account` after `since` (refunds do not give it back:
    a throttle limits what was paid out, not what was kept)."""
    total = session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(Journal, Journal.id == Posting.journal_id)
        .where(Posting.merchant_id == merchant_id, Posting.account == account,
               Posting.amount > 0, Journal.kind.in_((CASHBACK, CLAIM)),
               Journal.created_at > since))
    return int(total or 0)


def _same(column: InstrumentedAttribute[Any], value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _balance(session: Session, merchant_id: int, like: Posting, account: str) -> int:
    """What is left on `account` of postings like `like` (same rule, vesting and lapse)."""
    total = session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0))
        .where(Posting.merchant_id == merchant_id, Posting.account == account,
               _same(Posting.rule, like.rule), _same(Posting.vests_at, like.vests_at),
               _same(Posting.lapses_at, like.lapses_at)))
    return int(total or 0)


def _booked_leg(session: Session, original: Receipt, kind: str, rule: str | None,
                merchant_side: str) -> Posting | None:
    """The customer-side posting the original sale booked for `rule` (points: None)."""
    return session.scalars(
        select(Posting).join(Journal, Journal.id == Posting.journal_id)
        .where(Journal.receipt_id == original.id, Journal.kind == kind,
               _same(Posting.rule, rule), Posting.account != merchant_side)
        .order_by(Posting.id)).first()


def _book_refund(session: Session, receipt: Receipt, fields: dict[str, Any],
                 at: datetime) -> str | None:
    """Reverse exactly the refund's `reversal`: per rule, the opposite of the cashback on the
    account the sale booked it to (the claimer's, once its claim token was claimed), with the
    same vesting and lapse; and the points. Credits are per order and stay (the receipt's
    reversal has none). What the sale booked to no one (an anonymous shopper) is skipped."""
    merchant_id, refund_of = receipt.merchant_id, fields["refund_of"]
    lock_merchant(session, merchant_id)  # a claim must not move what is being reversed
    original = session.scalar(select(Receipt).where(Receipt.merchant_id == merchant_id,
                                                    Receipt.receipt_id == refund_of))
    if original is None:
        return f"refund of unknown receipt {refund_of}"
    if original.status != BOOKED:
        return f"refund of receipt {refund_of}, which is {original.status}, not booked"
    claimed_by = session.scalar(select(ClaimToken.claimed_by).where(
        ClaimToken.receipt_id == original.id))
    reversal = fields["reversal"]
    plans: list[Planned] = []
    for item in reversal.get("wallet") or []:
        booked = _booked_leg(session, original, CASHBACK, item["rule"], MERCHANT_CASHBACK)
        if booked is None:
            continue
        account = booked.account
        if account.startswith("claim:") and claimed_by is not None:
            account = customer_account(claimed_by, WALLET)
        left = _balance(session, merchant_id, booked, account)
        if item["amount"] > left:
            return (f"reversal of {item['rule']}: {item['amount']} is more than the {left} "
                    f"left of it on receipt {refund_of}")
        plans.append(Planned(REVERSAL, _pair(account, -item["amount"], MERCHANT_CASHBACK,
                                             rule=booked.rule, vests_at=booked.vests_at,
                                             lapses_at=booked.lapses_at)))
    points = reversal.get("points") or 0
    booked = _booked_leg(session, original, POINTS, None, MERCHANT_POINTS) if points else None
    if booked is not None:
        left = _balance(session, merchant_id, booked, booked.account)
        if points > left:
            return f"reversal of {points} points is more than the {left} left"
        plans.append(Planned(REVERSAL, _pair(booked.account, -points, MERCHANT_POINTS)))
    for plan in plans:
        _post(session, merchant_id, plan, receipt.id, at)
    return None


@dataclass(frozen=True)
class Group:
    """Postings of one account alike but for their amounts, summed."""

    account: str
    rule: str | None
    toward: str | None
    vests_at: datetime | None
    lapses_at: datetime | None
    amount: int

    def entry(self) -> dict[str, Any]:
        return {"rule": self.rule, "amount": self.amount,
                "vests_at": None if self.vests_at is None else format_time(self.vests_at),
                "lapses_at": None if self.lapses_at is None else format_time(self.lapses_at)}


def _groups(session: Session, merchant_id: int, accounts: list[str]) -> list[Group]:
    rows = session.execute(
        select(Posting.account, Posting.rule, Posting.toward, Posting.vests_at,
               Posting.lapses_at, func.sum(Posting.amount))
        .where(Posting.merchant_id == merchant_id, Posting.account.in_(accounts))
        .group_by(Posting.account, Posting.rule, Posting.toward, Posting.vests_at,
                  Posting.lapses_at))
    groups = [Group(account, rule, toward, vests_at, lapses_at, int(total))
              for account, rule, toward, vests_at, lapses_at, total in rows]
    return sorted((g for g in groups if g.amount), key=lambda g: (
        g.vests_at or EPOCH, g.lapses_at or NEVER, g.rule or "", g.toward or ""))


def wallet(session: Session, merchant_id: int, customer: str, at: datetime, *,
           limit: int = 50, after: int | None = None) -> dict[str, Any]:
    """The customer's wallet as of `at`, derived from the postings: every posting booked so
    far counts, and `at` decides what has vested and what has lapsed. History is newest
    first, `limit` journals after the journal id `after` (the previous page's `next`)."""
    accounts = {what: customer_account(customer, what) for what in (WALLET, CREDIT, POINTS)}
    available = lapsed = points = 0
    pending: list[dict[str, Any]] = []
    lapsing: list[dict[str, Any]] = []
    credits: dict[tuple[str | None, datetime | None], int] = defaultdict(int)
    for group in _groups(session, merchant_id, list(accounts.values())):
        if group.account == accounts[POINTS]:
            points += group.amount  # points never vest or lapse
            continue
        vested = group.vests_at is None or group.vests_at <= at
        gone = group.lapses_at is not None and group.lapses_at <= at
        if group.account == accounts[CREDIT]:
            if vested and not gone:
                credits[group.toward, group.lapses_at] += group.amount
        elif gone:
            lapsed += group.amount
        elif not vested:
            pending.append(group.entry())
        else:
            available += group.amount
            if group.lapses_at is not None and group.lapses_at <= at + LAPSING_SOON:
                lapsing.append(group.entry())
    history, following = _history(session, merchant_id, accounts, limit, after)
    return {
        "customer": customer, "at": format_time(at), "available": available,
        "pending": pending,
        "lapsing_soon": sorted(lapsing, key=lambda e: (e["lapses_at"], e["rule"] or "")),
        "lapsed": lapsed,
        "credits": [{"toward": toward, "amount": amount,
                     "lapses_at": None if lapses_at is None else format_time(lapses_at)}
                    for (toward, lapses_at), amount in sorted(credits.items(), key=lambda c: (
                        c[0][1] or NEVER, c[0][0] or ""))],
        "points": points, "history": history, "next": following,
    }


def _history(session: Session, merchant_id: int, accounts: dict[str, str], limit: int,
             after: int | None) -> tuple[list[dict[str, Any]], int | None]:
    """Each journal touches one account of a customer, so a journal is one history entry."""
    what = {account: name for name, account in accounts.items()}
    query = (select(Journal.id, Journal.kind, Journal.created_at, Receipt.receipt_id,
                    Posting.account, func.sum(Posting.amount))
             .join(Posting, Posting.journal_id == Journal.id)
             .outerjoin(Receipt, Receipt.id == Journal.receipt_id)
             .where(Journal.merchant_id == merchant_id, Posting.merchant_id == merchant_id,
                    Posting.account.in_(list(accounts.values())))
             .group_by(Journal.id, Journal.kind, Journal.created_at, Receipt.receipt_id,
                       Posting.account)
             .order_by(Journal.id.desc()).limit(limit + 1))
    if after is not None:
        query = query.where(Journal.id < after)
    rows = session.execute(query).all()
    entries: list[dict[str, Any]] = [
        {"id": journal_id, "kind": kind, "account": what[account], "amount": int(total),
         "receipt": receipt_id, "at": format_time(created_at)}
        for journal_id, kind, created_at, receipt_id, account, total in rows[:limit]]
    return entries, rows[limit - 1][0] if len(rows) > limit else None


def claim(session: Session, merchant_id: int, token: str, customer: str, device: str | None,
          at: datetime, *, actor_token_id: int | None) -> dict[str, Any]:
    """Move everything on the token's claim account to the customer's wallet, keeping each
    entry's vesting and lapse, and mark the token claimed — once: the conditional update
    admits one claim of a token however many race (the merchant lock also serialises the
    throttles' counts). 404 for a token no booked receipt carries, 409 once claimed;
    ClaimHeld over a throttle."""
    token_hash = claim_hash(token)
    lock_merchant(session, merchant_id)
    row = session.scalar(select(ClaimToken).where(ClaimToken.merchant_id == merchant_id,
                                                  ClaimToken.token_hash == token_hash))
    if row is None:
        raise ApiError(404, "claim_token", "no booked receipt carries this claim token (yet: "
                       "a PoP may still be offline)")
    already = ApiError(409, "claim_token", "this claim token was claimed already")
    if row.claimed_at is not None:
        raise already
    source = claim_account(token_hash)
    groups = _groups(session, merchant_id, [source])
    amount = sum(group.amount for group in groups)
    reason = _throttle_claim(session, merchant_id, customer, device, amount, at)
    details = {"claim": token_hash, "customer": customer, "device": device, "amount": amount}
    if reason is not None:
        refused = audit.record(session, audit.CLAIM_REFUSED, merchant_id=merchant_id,
                               actor_token_id=actor_token_id, reason=reason, **details)
        refused.at = at  # the ledger's clock, which the device throttle counts by
        raise ClaimHeld(reason)
    result = cast(CursorResult[Any], session.execute(
        update(ClaimToken).where(ClaimToken.id == row.id, ClaimToken.claimed_at.is_(None))
        .values(claimed_at=at, claimed_by=customer).execution_options(synchronize_session=False)))
    if result.rowcount != 1:
        raise already
    target = customer_account(customer, WALLET)
    legs = [leg for group in groups for leg in (
        Leg(source, -group.amount, group.rule, None, group.vests_at, group.lapses_at),
        Leg(target, group.amount, group.rule, None, group.vests_at, group.lapses_at))]
    journal = _post(session, merchant_id, Planned(CLAIM, legs), row.receipt_id, at) \
        if legs else None
    session.flush()  # the journal's id, for the event
    booked = audit.record(session, audit.CLAIM_BOOKED, merchant_id=merchant_id,
                          actor_token_id=actor_token_id,
                          journal=None if journal is None else journal.id, **details)
    booked.at = at
    receipt_id = session.scalar(select(Receipt.receipt_id).where(Receipt.id == row.receipt_id))
    return {"customer": customer, "receipt": receipt_id, "amount": amount,
            "entries": [group.entry() for group in groups]}


def _throttle_claim(session: Session, merchant_id: int, customer: str, device: str | None,
                    amount: int, at: datetime) -> str | None:
    configured = throttles.limits(session, merchant_id)
    checks: list[str | None] = []
    limit = configured.get(throttles.CUSTOMER)
    if limit is not None:
        since = at - timedelta(seconds=limit.window)
        claims = session.scalar(select(func.count(ClaimToken.id)).where(
            ClaimToken.merchant_id == merchant_id, ClaimToken.claimed_by == customer,
            ClaimToken.claimed_at > since)) or 0
        checks += [
            throttles.over(throttles.CUSTOMER, throttles.MAX_CLAIMS, limit, claims, 1),
            throttles.over(throttles.CUSTOMER, throttles.MAX_AMOUNT, limit, booked_cashback(
                session, merchant_id, customer_account(customer, WALLET), since), amount)]
    limit = configured.get(throttles.DEVICE)
    if limit is not None and device is not None:
        claimed = [event.details for event in session.scalars(select(AuditEvent).where(
            AuditEvent.merchant_id == merchant_id, AuditEvent.kind == audit.CLAIM_BOOKED,
            AuditEvent.at > at - timedelta(seconds=limit.window)))
            if event.details.get("device") == device]
        checks += [
            throttles.over(throttles.DEVICE, throttles.MAX_CLAIMS, limit, len(claimed), 1),
            throttles.over(throttles.DEVICE, throttles.MAX_AMOUNT, limit,
                           sum(details["amount"] for details in claimed), amount)]
    return next((reason for reason in checks if reason is not None), None)
