"""The host half of the module ABI: requests become the input words of docs/abi.md, and
answer words become the quote of spec section 8, checked here without running a module."""

from __future__ import annotations

from edge_worker.core.codec import Encoded, Tables, decode, encode
from poprules.request import Customer, Line, Request
from wasm_build import abi

TABLES = Tables.of({
    "currency": "EUR", "places": 2, "strings": ["TEE", "apparel", "", "pickup", "vip"],
    "skus": ["TEE", "MUG"], "nodes": ["order.subtotal", "order.subtotal >= 100.00"],
    "rules": [
        {"id": "big", "key": "cashback"},
        {"id": "tier", "key": "discount", "basis": "order.net", "lowest": "50.00"},
        {"id": "credit", "key": "credit", "toward": 'item.category == "socks"'},
        {"id": "pts", "key": "points", "gives": "points 1 per 1.00"},
    ],
})
AT = 1_783_159_200  # 2026-07-04T10:00:00Z


def request(**changes: object) -> Request:
    base: dict[str, object] = {
        "lines": (Line("TEE", 2), Line("MUG", 1)), "channel": "web", "fulfillment": "pickup",
        "pop": "lisbon-1", "coupons": (), "spent_coupons": (), "customer": None,
        "prefer": "wallet", "at": AT,
    }
    return Request(**{**base, **changes})  # type: ignore[arg-type]


def test_encode_writes_the_header_lines_tags_and_coupons() -> None:
    customer = Customer("gold", 3, frozenset({"vip", "new"}), True)
    sets = {"summer24": 0}
    encoded = encode(
        request(customer=customer, coupons=(" Summer24", "SUMMER 24", "nope", "summer24")),
        TABLES, lambda code: sets.get(code, -1), {"summer24"}.__contains__,
    )
    # unknown strings get ids above the table, one per distinct string, in first-use order
    assert encoded.extras == ["web", "lisbon-1", "gold", "new"]
    assert encoded.codes == [" Summer24", "nope"]  # once each, by normal form
    assert encoded.words == [
        2, AT, 5, 3, 6, 1, 7, 3, 1, 0, 2, 2,
        0, 2, 1, 1,
        4, 8,
        0, 1, -1, 0,
    ]


def test_encode_without_customer_uses_the_defaults() -> None:
    words = encode(request(prefer="instant"), TABLES, lambda _: -1, lambda _: False).words
    assert words[abi.IN_KNOWN] == 0 and words[abi.IN_TIER] == TABLES.string_ids[""]
    assert words[abi.IN_ORDERS] == 0 and words[abi.IN_REFERRED] == 0
    assert words[abi.IN_PREFER_INSTANT] == 1 and words[abi.IN_N_TAGS] == 0


def answer_words() -> list[int]:
    out = [abi.EVAL_OK] + [0] * (abi.OUT_HEADER_WORDS - 1)
    out += [1990, 3980, 398, 3582, 0, 331, 36]  # line 0
    out += [745, 745, 0, 745, 0, 69, 7]  # line 1
    out += [4725, 398, 4327, 0, 4327, 400, 43]  # totals
    out += [abi.STATUS_NOT_ELIGIBLE, 0, 0, abi.FAILED_NODE, 1, abi.T_MONEY, 4725]
    out += [abi.STATUS_NOT_ELIGIBLE, 0, 0, abi.FAILED_TIER, -1, abi.T_MONEY, 4327]
    out += [abi.STATUS_CAPPED, 300, 500, 0, -1, 0, 0]
    out += [abi.STATUS_INACTIVE, 0, 0, 0, -1, 0, 0]
    out += [1, 0, 400, AT + 86_400, abi.NONE, 1]  # wallet: one entry, to the referrer
    out += [1, 2, 300, abi.NONE]  # credits
    out += [2, 0, 5275, abi.VALUE_PERCENT, 40_000, 3, 10, -1, 0]  # nudges
    out += [abi.COUPON_NOT_APPLICABLE, -1, -1, abi.COUPON_NOT_APPLICABLE, 1,
            abi.STATUS_NOT_ELIGIBLE]
    return out


def test_decode_builds_the_quote() -> None:
    req = request(coupons=("a", "b"))
    encoded = Encoded([], [], ["a", "b"])
    quote = decode(answer_words(), req, encoded, TABLES)
    assert quote["lines"][0] == {
        "sku": "TEE", "qty": 2, "unit_price": 1990, "base": 3980, "discount": 398,
        "net": 3582, "cashback_instant": 0, "cashback_wallet": 331, "points": 36,
    }
    assert quote["totals"]["payable"] == 4327
    assert quote["rules"] == [
        {"rule": "big", "status": "not_eligible", "failed": "order.subtotal >= 100.00",
         "value": 4725},
        {"rule": "tier", "status": "not_eligible", "failed": "order.net >= 50.00",
         "value": 4327},
        {"rule": "credit", "status": "capped", "amount": 300, "uncapped": 500},
        {"rule": "pts", "status": "inactive"},
    ]
    assert quote["wallet"] == [{"rule": "big", "amount": 400, "vests_at": "2026-07-05T10:00:00Z",
                                "lapses_at": None, "to": "referrer"}]
    assert quote["credits"] == [{"rule": "credit", "amount": 300,
                                 "toward": 'item.category == "socks"', "lapses_at": None}]
    assert quote["nudges"] == [{"rule": "big", "missing": 5275, "gives": "cashback 4%"},
                               {"rule": "pts", "missing": 10, "gives": "points 1 per 1.00"}]
    assert quote["coupons"] == [
        {"code": "a", "status": "not_applicable", "rule": None, "reason": "unused"},
        {"code": "b", "status": "not_applicable", "rule": "tier", "reason": "not_eligible"},
    ]
