"""What a PoP commits: the request as evaluated, quote ids, sale and refund receipts, and the
split of wallet cashback that refunds reverse (edge_worker/core/checkout.py)."""

from __future__ import annotations

import json
from datetime import UTC
from itertools import combinations
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from edge_worker.core import checkout
from edge_worker.core.redemptions import Redemptions
from edge_worker.core.release import Release
from poprules import api, receipt
from poprules.bundle import normal_code_hash
from poprules.codes import normalize_code
from poprules.errors import InputError
from poprules.literals import parse_time
from tests.conftest import DEMO

NOW = parse_time("2026-07-04T09:30:00Z", UTC)
SUB = "a" * 64
TOKEN = {"sub": SUB, "customer": {"orders": 3, "referred": False, "tags": ["vip"],
                                  "tier": "gold"}}
CART = [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 2}, {"sku": "SOCK-3", "qty": 3}]


@pytest.fixture(scope="module")
def release() -> Release:
    return api.load_release(api.build(api.load(DEMO / "rules.yaml", DEMO / "catalog.json")))


def snapshot(release: Release, **state: Any) -> Redemptions:
    document = {"format": "poprules-redemptions/1", "merchant": 1, "version": 2,
                "program": "corner-market", "issued": {}, "spent": [], "spent_sets": [],
                "spent_by_customer": {}, **state}
    body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return Redemptions.from_snapshot(body, release=release)


def test_the_request_as_evaluated_is_complete_and_holds_only_what_was_checked(
        release: Release) -> None:
    fields = {"lines": [{"sku": "TEE-01", "qty": 1, "price": "0.01"}], "coupons": ["x"],
              "customer": {"tier": "forged"}, "at": "1999-01-01T00:00:00Z", "junk": True}
    evaluation = checkout.evaluate(release, None, fields, token=TOKEN, at=NOW)
    assert evaluation.request == {
        "lines": [{"sku": "TEE-01", "qty": 1}], "channel": "", "fulfillment": "", "pop": "",
        "coupons": ["x"], "prefer": "wallet", "at": "2026-07-04T09:30:00Z",
        "customer": TOKEN["customer"]}
    assert (evaluation.at, evaluation.customer, evaluation.snapshot, evaluation.spent) == (
        NOW, SUB, None, [])
    assert evaluation.quote == release.quote(release.read_request(evaluation.request),
                                             with_release=False)
    anonymous = checkout.evaluate(release, None, fields, token=None, at=NOW)
    assert "customer" not in anonymous.request and anonymous.customer is None


def test_bad_fields_raise_the_error_naming_them(release: Release) -> None:
    with pytest.raises(InputError) as caught:
        checkout.evaluate(release, None, {"lines": [{"sku": "TEE-01", "qty": "2"}]},
                          token=None, at=NOW)
    assert caught.value.field == "lines[0].qty"


def test_spent_codes_are_recorded_as_keyed_hashes_from_the_snapshot(release: Release) -> None:
    fields = {"lines": CART, "coupons": ["summer-24", "Summer-24 ", "nope"]}
    state = snapshot(release, spent_by_customer={SUB: ["summer"]})
    mine = checkout.evaluate(release, state, fields, token=TOKEN, at=NOW)
    key = release.bundle.coupons["key"]
    assert mine.spent == [normal_code_hash(key, normalize_code("SUMMER-24"))]
    assert mine.snapshot == 2
    assert [c["status"] for c in mine.quote["coupons"]] == ["spent", "unknown"]
    other = checkout.evaluate(release, state, fields, token={**TOKEN, "sub": "b" * 64}, at=NOW)
    assert other.spent == [] and other.quote["coupons"][0]["status"] == "valid"
    assert other.quote_id != mine.quote_id


def test_the_quote_id_changes_with_anything_the_quote_depends_on() -> None:
    request = {"lines": CART, "at": "2026-07-04T09:30:00Z"}
    base = checkout.quote_id("sha256:" + "1" * 64, request, None, [])
    assert base == checkout.quote_id("sha256:" + "1" * 64, dict(reversed(request.items())),
                                     None, [])
    assert base != checkout.quote_id("sha256:" + "2" * 64, request, None, [])
    assert base != checkout.quote_id("sha256:" + "1" * 64, request, SUB, [])
    assert base != checkout.quote_id("sha256:" + "1" * 64, request, None, ["ab"])
    assert base != checkout.quote_id("sha256:" + "1" * 64, {**request, "pop": "x"}, None, [])


def test_the_signed_quote_covers_the_whole_answer(release: Release) -> None:
    key = SigningKey(b"k" * 32)
    evaluation = checkout.evaluate(release, None, {"lines": CART}, token=None, at=NOW)
    answer = checkout.signed_quote(evaluation, release, 12, 5,
                                   lambda m: key.sign(m).signature)
    signature = bytes.fromhex(answer.pop("signature"))
    key.verify_key.verify(checkout.QUOTE_CONTEXT + receipt.encode(answer), signature)
    assert answer["release"]["number"] == 12 and answer["pop"] == 5
    assert answer["quote_id"] == evaluation.quote_id


def test_sale_and_refund_bodies_are_canonical_receipts(release: Release) -> None:
    evaluation = checkout.evaluate(release, None, {"lines": CART, "fulfillment": "pickup"},
                                   token=None, at=NOW)
    token = checkout.claim_token("5-1", "s" * 22)
    body = checkout.sale_body(evaluation, merchant_id=2, pop_id=5, seq=1, prev=receipt.GENESIS,
                              release_number=3, release_hash=release.hash,
                              claim=checkout.claim_hash(token))
    sale = receipt.decode(body)
    assert set(sale) == {*receipt.COMMON, "release", "request", "customer", "referrer",
                         "quote", "quote_id", "claim", "snapshot", "spent"}
    assert (sale["customer"], sale["referrer"]) == (None, None)  # an anonymous shopper
    assert sale["claim"] == checkout.claim_hash(token) != token
    refund = receipt.decode(checkout.refund_body(sale, [1], merchant_id=2, pop_id=5, seq=2,
                                                 prev=receipt.digest(body), at=NOW + 5))
    assert set(refund) == {*receipt.COMMON, "refund_of", "lines", "reversal"}
    assert (refund["id"], refund["refund_of"], refund["lines"]) == ("5-2", "5-1", [1])
    assert set(refund["reversal"]) == {"lines", "totals", "wallet", "points"}
    assert set(refund["reversal"]["totals"]) == set(checkout.TOTALS)


@pytest.mark.parametrize(("lines", "refunded", "field"), [
    ([], set(), "lines"), ("0", set(), "lines"), ([3], set(), "lines[0]"),
    ([0, -1], set(), "lines[1]"), ([0, 0], set(), "lines[1]"), ([2, 1], {1}, "lines[1]"),
    ([False], set(), "lines[0]"),
])
def test_refund_lines_are_checked(lines: Any, refunded: set[int], field: str) -> None:
    sale = {"id": "5-1", "request": {"lines": CART}}
    with pytest.raises(InputError) as caught:
        checkout.refund_lines(sale, lines, refunded)
    assert caught.value.field == field


def test_refund_lines_are_sorted() -> None:
    assert checkout.refund_lines({"id": "5-1", "request": {"lines": CART}}, [2, 0], {1}) == [0, 2]


def test_apportion() -> None:
    assert checkout.apportion(10, [1, 1, 1]) == [4, 3, 3]  # ties go to the earlier
    assert checkout.apportion(2, [1, 0, 1]) == [1, 0, 1]
    assert checkout.apportion(316, [400, 118]) == [244, 72]
    assert checkout.apportion(0, [0, 0]) == [0, 0]
    with pytest.raises(ValueError):
        checkout.apportion(1, [0, 0])


def quote_of(cashback: list[int], nets: list[int], mine: list[int],
             theirs: list[int]) -> dict[str, Any]:
    lines = [{"base": n + 10, "discount": 10, "net": n, "cashback_instant": 1,
              "cashback_wallet": c, "points": 2} for c, n in zip(cashback, nets, strict=True)]
    wallet = [{"rule": f"mine-{i}", "amount": a, "to": "customer"} for i, a in enumerate(mine)]
    wallet += [{"rule": f"ref-{i}", "amount": a, "to": "referrer"} for i, a in enumerate(theirs)]
    return {"lines": lines, "wallet": wallet}


@st.composite
def quotes(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 6))
    cashback = draw(st.lists(st.integers(0, 10_000), min_size=count, max_size=count))
    nets = draw(st.lists(st.integers(0, 100_000), min_size=count, max_size=count))
    rules = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(st.integers(0, sum(cashback)), min_size=rules - 1,
                                max_size=rules - 1)))
    mine = [b - a for a, b in zip([0, *cuts], [*cuts, sum(cashback)], strict=True)]
    theirs = draw(st.lists(st.integers(1, 5_000), max_size=2))
    return quote_of(cashback, nets, mine, theirs)


@given(quotes(), st.data())
def test_refunding_every_line_in_any_refunds_reverses_each_rule_exactly(
        quote: dict[str, Any], data: st.DataObject) -> None:
    count = len(quote["lines"])
    order = data.draw(st.permutations(range(count)))
    cut = data.draw(st.integers(0, count))
    reversed_by_rule: dict[str, int] = {}
    for part in (sorted(order[:cut]), sorted(order[cut:])):
        if not part:
            continue
        reversal = checkout.reversal(quote, part)
        assert sum(w["amount"] for w in reversal["wallet"] if w["rule"].startswith("mine")) \
            == sum(quote["lines"][i]["cashback_wallet"] for i in part)
        for entry in reversal["wallet"]:
            assert entry["amount"] > 0
            reversed_by_rule[entry["rule"]] = reversed_by_rule.get(entry["rule"], 0) \
                + entry["amount"]
    assert reversed_by_rule == {w["rule"]: w["amount"] for w in quote["wallet"] if w["amount"]}


def test_a_referrers_cashback_is_reversed_with_the_lines_net() -> None:
    quote = quote_of([30, 10], [300, 100], [40], [100])
    assert checkout.reversal(quote, [1])["wallet"] == [{"rule": "mine-0", "amount": 10},
                                                       {"rule": "ref-0", "amount": 25}]
    assert checkout.reversal(quote, [0])["totals"] == {
        "subtotal": 310, "discount": 10, "net": 300, "cashback_instant": 1, "payable": 299,
        "cashback_wallet": 30, "points": 2}


def test_each_refund_takes_back_at_most_what_each_rule_gave() -> None:
    quote = quote_of([1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [])
    parts = [checkout.reversal(quote, [i])["wallet"] for i in range(4)]
    assert sorted(w["rule"] for part in parts for w in part) == [
        "mine-0", "mine-1", "mine-2", "mine-3"]
    for size in (2, 3):
        for lines in combinations(range(4), size):
            wallet = checkout.reversal(quote, list(lines))["wallet"]
            assert all(w["amount"] == 1 for w in wallet) and len(wallet) == size


def test_a_quote_whose_wallet_does_not_add_up_is_not_split() -> None:
    with pytest.raises(ValueError):
        checkout.wallet_shares(quote_of([5], [10], [4], []))
