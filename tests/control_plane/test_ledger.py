"""The wallet ledger (control_plane.ledger): what a booked sale, refund or claim writes, that
every journal balances, that nothing is ever rewritten, and what a throttle holds. Receipts
are made directly, as the ingestion would store them after verifying them."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from control_plane import ledger, throttles
from control_plane.coupon_key import customer_hash, customer_key
from control_plane.storage.models import ClaimToken, Journal, Pop, Posting, Receipt
from tests.control_plane.conftest import Plane

AT = datetime(2026, 7, 4, 10, tzinfo=UTC)
VESTS = "2026-08-03T10:00:00Z"
LAPSES = "2027-08-03T10:00:00Z"
CREDIT_LAPSES = "2026-07-18T10:00:00Z"
TOWARD = 'item.category == "socks"'


def customer_of(plane: Plane, merchant_id: int, subject: str) -> str:
    """The merchant's hash of a shop's id, as customer tokens carry it."""
    return customer_hash(customer_key(plane.state.settings.key_dir, merchant_id), subject)


def cashback(rule: str, amount: int, *, to: str = "customer", vests: str = VESTS,
             lapses: str | None = LAPSES) -> dict[str, Any]:
    return {"rule": rule, "amount": amount, "vests_at": vests, "lapses_at": lapses, "to": to}


def sale(*, customer: str | None = None, claim: str | None = None,
         referrer: str | None = None, wallet: list[dict[str, Any]] | None = None,
         credits: list[dict[str, Any]] | None = None, points: int = 0) -> dict[str, Any]:
    """The fields of a sale receipt that the ledger reads (docs/receipts.md)."""
    return {"kind": "sale", "at": int(AT.timestamp()), "customer": customer, "claim": claim,
            "referrer": referrer,
            "quote": {"wallet": wallet or [], "credits": credits or [],
                      "totals": {"points": points}}}


def refund(of: str, wallet: list[tuple[str, int]], points: int = 0) -> dict[str, Any]:
    return {"kind": "refund", "refund_of": of, "at": int(AT.timestamp()),
            "reversal": {"wallet": [{"rule": r, "amount": a} for r, a in wallet],
                         "points": points}}


def store(plane: Plane, merchant_id: int, fields: dict[str, Any],
          at: datetime = AT) -> tuple[str, str | None]:
    """Store a receipt and book it as the ingestion does: (its receipt id, the hold reason
    or None)."""
    with plane.state.db.session() as session:
        pop = session.scalar(select(Pop).where(Pop.merchant_id == merchant_id))
        if pop is None:
            pop = Pop(merchant_id=merchant_id, name="ledger", group="*", public_key="00" * 32,
                      token_hash=uuid.uuid4().hex * 2)
            session.add(pop)
            session.flush()
        seq = (session.scalar(select(func.max(Receipt.seq)).where(Receipt.pop_id == pop.id))
               or 0) + 1
        body = json.dumps(fields, sort_keys=True).encode()
        row = Receipt(merchant_id=merchant_id, pop_id=pop.id, receipt_id=f"{pop.id}-{seq}",
                      seq=seq, prev="0" * 64, digest=hashlib.sha256(body).hexdigest(),
                      kind=fields["kind"], release_hash="sha256:" + "0" * 64,
                      customer=fields.get("customer"), body=body, signature="00" * 64,
                      status="received")
        session.add(row)
        reason = ledger.book(session, row, fields, at)
        row.status, row.reason = ("booked", None) if reason is None else ("held", reason)
        session.commit()
        return row.receipt_id, reason


def seed_claim(plane: Plane, merchant_id: int, token: str, amount: int = 400) -> str:
    """A booked anonymous sale whose cashback waits for `token`; its receipt id."""
    receipt_id, reason = store(plane, merchant_id, sale(
        claim=ledger.claim_hash(token), wallet=[cashback("pickup-boost", amount)]))
    assert reason is None
    return receipt_id


def postings(plane: Plane, merchant_id: int) -> list[tuple[Any, ...]]:
    with plane.state.db.session() as session:
        return [tuple(row) for row in session.execute(
            select(Posting.id, Posting.journal_id, Journal.kind, Posting.account, Posting.amount,
                   Posting.rule, Posting.toward, Posting.vests_at, Posting.lapses_at)
            .join(Journal, Journal.id == Posting.journal_id)
            .where(Posting.merchant_id == merchant_id).order_by(Posting.id))]


def balance(plane: Plane, merchant_id: int, account: str) -> int:
    return sum(p[4] for p in postings(plane, merchant_id) if p[3] == account)


def assert_balanced(plane: Plane, merchant_id: int) -> None:
    """Every journal sums to zero, and none mixes points with money."""
    journals: dict[int, list[tuple[Any, ...]]] = {}
    for posting in postings(plane, merchant_id):
        journals.setdefault(posting[1], []).append(posting)
    assert journals
    for legs in journals.values():
        assert sum(leg[4] for leg in legs) == 0, legs
        assert len({leg[3].endswith(":points") for leg in legs}) == 1, legs


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_sale_books_cashback_credits_and_points_in_balanced_journals(plane: Plane) -> None:
    merchant = plane.merchant("corner").merchant_id
    shopper = customer_of(plane, merchant, "shopper-1")
    receipt_id, reason = store(plane, merchant, sale(
        customer=shopper, wallet=[cashback("pickup-boost", 400), cashback("big", 50, lapses=None)],
        credits=[{"rule": "socks-upsell", "amount": 300, "toward": TOWARD,
                  "lapses_at": CREDIT_LAPSES}], points=43))
    assert reason is None
    rows = {(p[2], p[3], p[4], p[5], p[6], p[7], p[8]) for p in postings(plane, merchant)}
    wallet = f"customer:{shopper}:wallet"
    assert rows == {
        ("cashback", wallet, 400, "pickup-boost", None, t(VESTS), t(LAPSES)),
        ("cashback", "merchant:cashback", -400, "pickup-boost", None, t(VESTS), t(LAPSES)),
        ("cashback", wallet, 50, "big", None, t(VESTS), None),
        ("cashback", "merchant:cashback", -50, "big", None, t(VESTS), None),
        ("credit", f"customer:{shopper}:credit", 300, "socks-upsell", TOWARD, AT,
         t(CREDIT_LAPSES)),
        ("credit", "merchant:credit", -300, "socks-upsell", TOWARD, AT, t(CREDIT_LAPSES)),
        ("points", f"customer:{shopper}:points", 43, None, None, None, None),
        ("points", "merchant:points", -43, None, None, None, None)}
    assert_balanced(plane, merchant)
    with plane.state.db.session() as session:
        linked = session.scalars(select(Receipt.receipt_id).join(
            Journal, Journal.receipt_id == Receipt.id)).all()
    assert linked == [receipt_id] * 4


def test_a_referrer_is_paid_on_their_own_wallet(plane: Plane) -> None:
    merchant = plane.merchant("corner").merchant_id
    shopper, friend = (customer_of(plane, merchant, s) for s in ("shopper-1", "friend-1"))
    _, reason = store(plane, merchant, sale(
        customer=shopper, referrer=friend,
        wallet=[cashback("pickup-boost", 400), cashback("bring-a-friend", 250, to="referrer")]))
    assert reason is None
    assert balance(plane, merchant, f"customer:{friend}:wallet") == 250
    assert balance(plane, merchant, f"customer:{shopper}:wallet") == 400
    assert_balanced(plane, merchant)


@pytest.mark.parametrize("fields", [
    {"customer": "ab" * 32},  # no referrer key at all (a receipt from before the field)
    {"customer": "ab" * 32, "referrer": None},
])
def test_a_referrer_reward_without_a_referrer_is_held(plane: Plane,
                                                      fields: dict[str, Any]) -> None:
    merchant = plane.merchant("corner").merchant_id
    body = sale(wallet=[cashback("pickup-boost", 400), cashback("friend", 250, to="referrer")])
    body.pop("referrer")
    _, reason = store(plane, merchant, {**body, **fields})
    assert reason == ledger.REFERRER_UNKNOWN
    assert postings(plane, merchant) == []


def test_an_anonymous_sale_without_a_claim_books_nothing(plane: Plane) -> None:
    merchant = plane.merchant("corner").merchant_id
    _, reason = store(plane, merchant, sale(wallet=[cashback("pickup-boost", 400)], points=43,
                                            credits=[{"rule": "c", "amount": 300,
                                                      "toward": TOWARD, "lapses_at": None}]))
    assert reason is None
    assert postings(plane, merchant) == []


def test_an_anonymous_sale_with_a_claim_waits_on_the_claim_account(plane: Plane) -> None:
    merchant = plane.merchant("corner").merchant_id
    token = "1-1.secret"
    receipt_id = seed_claim(plane, merchant, token)
    account = f"claim:{ledger.claim_hash(token)}:wallet"
    assert balance(plane, merchant, account) == 400
    with plane.state.db.session() as session:
        row = session.scalar(select(ClaimToken))
        assert row is not None and (row.token_hash, row.claimed_at) == (
            ledger.claim_hash(token), None)
        assert session.scalar(select(Receipt.receipt_id).where(
            Receipt.id == row.receipt_id)) == receipt_id
    # the same token on another receipt is held, not booked twice
    _, reason = store(plane, merchant, sale(claim=ledger.claim_hash(token),
                                            wallet=[cashback("pickup-boost", 100)]))
    assert reason is not None and "claim token" in reason
    assert balance(plane, merchant, account) == 400


def test_a_refund_reverses_exactly_what_it_names_and_rewrites_nothing(plane: Plane) -> None:
    merchant = plane.merchant("corner").merchant_id
    shopper, friend = (customer_of(plane, merchant, s) for s in ("shopper-1", "friend-1"))
    sale_id, _ = store(plane, merchant, sale(
        customer=shopper, referrer=friend, points=43,
        wallet=[cashback("pickup-boost", 400), cashback("friend", 250, to="referrer")],
        credits=[{"rule": "socks", "amount": 300, "toward": TOWARD, "lapses_at": None}]))
    before = postings(plane, merchant)
    refund_id, reason = store(plane, merchant, refund(sale_id, [("pickup-boost", 331),
                                                                ("friend", 200)], points=36))
    assert reason is None
    after = postings(plane, merchant)
    assert after[:len(before)] == before  # append-only
    added = {(p[2], p[3], p[4], p[5], p[7], p[8]) for p in after[len(before):]}
    assert added == {
        ("reversal", f"customer:{shopper}:wallet", -331, "pickup-boost", t(VESTS), t(LAPSES)),
        ("reversal", "merchant:cashback", 331, "pickup-boost", t(VESTS), t(LAPSES)),
        ("reversal", f"customer:{friend}:wallet", -200, "friend", t(VESTS), t(LAPSES)),
        ("reversal", "merchant:cashback", 200, "friend", t(VESTS), t(LAPSES)),
        ("reversal", f"customer:{shopper}:points", -36, None, None, None),
        ("reversal", "merchant:points", 36, None, None, None)}
    assert balance(plane, merchant, f"customer:{shopper}:credit") == 300  # a credit stays
    assert_balanced(plane, merchant)
    with plane.state.db.session() as session:
        linked = set(session.scalars(select(Receipt.receipt_id).join(
            Journal, Journal.receipt_id == Receipt.id).where(Journal.kind == "reversal")))
    assert linked == {refund_id}

    # the rest, then more than is left: held, nothing written
    assert store(plane, merchant, refund(sale_id, [("pickup-boost", 69)]))[1] is None
    assert balance(plane, merchant, f"customer:{shopper}:wallet") == 0
    count = len(postings(plane, merchant))
    _, reason = store(plane, merchant, refund(sale_id, [("pickup-boost", 1)]))
    assert reason is not None and "pickup-boost" in reason
    assert len(postings(plane, merchant)) == count


def test_a_refund_of_an_unknown_or_unbooked_sale_is_held(plane: Plane) -> None:
    merchant = plane.merchant("corner").merchant_id
    _, reason = store(plane, merchant, refund("9-9", [("pickup-boost", 1)]))
    assert reason == "refund of unknown receipt 9-9"
    held_id, held = store(plane, merchant, sale(customer="ab" * 32,
                                                wallet=[cashback("x", 5, to="referrer")]))
    assert held == ledger.REFERRER_UNKNOWN
    _, reason = store(plane, merchant, refund(held_id, [("x", 5)]))
    assert reason is not None and "held, not booked" in reason
    assert postings(plane, merchant) == []


def test_a_refund_after_a_claim_reverses_on_the_claimer(plane: Plane) -> None:
    merchant = plane.merchant("corner").merchant_id
    sale_id = seed_claim(plane, merchant, "1-1.secret")
    shopper = customer_of(plane, merchant, "shopper-1")
    with plane.state.db.session() as session:
        ledger.claim(session, merchant, "1-1.secret", shopper, None, AT, actor_token_id=None)
        session.commit()
    assert store(plane, merchant, refund(sale_id, [("pickup-boost", 100)]))[1] is None
    assert balance(plane, merchant, f"customer:{shopper}:wallet") == 300
    assert balance(plane, merchant, f"claim:{ledger.claim_hash('1-1.secret')}:wallet") == 0
    assert_balanced(plane, merchant)


def _throttle(plane: Plane, merchant: int, scope: str, **limit: Any) -> None:
    with plane.state.db.session() as session:
        throttles.replace(session, merchant, {scope: throttles.Limit(**limit)},
                          actor_token_id=None)
        session.commit()


def test_cashback_over_the_customer_throttle_is_held_with_its_reason(plane: Plane) -> None:
    merchant = plane.merchant("corner").merchant_id
    _throttle(plane, merchant, "customer", window=3600, max_claims=None, max_amount=500)
    shopper = customer_of(plane, merchant, "shopper-1")
    assert store(plane, merchant, sale(customer=shopper,
                                       wallet=[cashback("a", 400)]))[1] is None
    count = len(postings(plane, merchant))
    _, reason = store(plane, merchant, sale(customer=shopper, points=10,
                                            wallet=[cashback("a", 101)]),
                      at=AT + timedelta(seconds=3599))
    assert reason == ("throttle customer.max_amount: 400 in the last 3600 s and 101 more "
                      "would pass 500")
    assert len(postings(plane, merchant)) == count  # nothing booked, points neither
    # another customer, and the same one once the window has moved on, are booked
    other = customer_of(plane, merchant, "shopper-2")
    assert store(plane, merchant, sale(customer=other, wallet=[cashback("a", 500)]))[1] is None
    assert store(plane, merchant, sale(customer=shopper, wallet=[cashback("a", 101)]),
                 at=AT + timedelta(seconds=3600))[1] is None


def test_cashback_over_the_claim_throttle_is_held(plane: Plane) -> None:
    merchant = plane.merchant("corner").merchant_id
    _throttle(plane, merchant, "claim", window=60, max_claims=None, max_amount=300)
    _, reason = store(plane, merchant, sale(claim=ledger.claim_hash("1-1.s"),
                                            wallet=[cashback("a", 301)]))
    assert reason is not None and reason.startswith("throttle claim.max_amount:")
    with plane.state.db.session() as session:
        assert session.scalar(select(func.count(ClaimToken.id))) == 0
    assert postings(plane, merchant) == []


def _derive_at_once(key_dir: Path, racers: int) -> list[bytes]:
    keys: list[bytes] = []
    start = threading.Barrier(racers)

    def derive() -> None:
        start.wait()
        keys.append(customer_key(key_dir, 1))

    threads = [threading.Thread(target=derive) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return keys


def test_the_first_customer_keys_made_at_once_are_one_key(tmp_path: Path) -> None:
    """Workers that find no secret yet race to make it; none may read it half-written and
    hash shoppers under another key."""
    for attempt in range(20):
        keys = _derive_at_once(tmp_path / str(attempt), 8)
        assert len(keys) == 8 and len(set(keys)) == 1
