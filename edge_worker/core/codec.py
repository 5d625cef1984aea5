"""Request → module input words, module output words → the quote of spec section 8.

This is the host half of the module's ABI (`wasm_build/abi.py`, `docs/abi.md`); the runtime
is the other half. Text never crosses the boundary: strings become ids into the release's
string table (strings the release does not know get fresh ids above it, so they equal only
each other), and the answer's ids and node numbers become text again here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from poprules.codes import normalize_code
from poprules.currency import format_amount
from poprules.literals import format_percent, format_utc
from poprules.request import Request
from wasm_build.abi import (
    COUPON_NOT_APPLICABLE,
    COUPON_OUT_WORDS,
    COUPON_STATUSES,
    CREDIT_WORDS,
    FAILED_NODE,
    FAILED_REFERRED,
    FAILED_TIER,
    LINE_WORDS,
    NONE,
    NUDGE_WORDS,
    OUT_HEADER_WORDS,
    RO_AMOUNT,
    RO_FAILED,
    RO_FAILED_REF,
    RO_UNCAPPED,
    RO_VALUE,
    RO_VALUE_TYPE,
    RULE_OUT_WORDS,
    STATUS_APPLIED,
    STATUS_CAPPED,
    STATUS_NOT_ELIGIBLE,
    STATUSES,
    T_BOOL,
    T_SET,
    T_STRING,
    T_TIME,
    TOTAL_WORDS,
    VALUE_PER_UNIT,
    VALUE_PERCENT,
    WALLET_WORDS,
)


@dataclass(frozen=True)
class Encoded:
    words: list[int]
    extras: list[str]  # request strings unknown to the release, id = table size + index
    codes: list[str]  # the coupon codes reported, as given, once each


@dataclass(frozen=True)
class Tables:
    """What a release's host tables say, shaped for speed."""

    currency: str
    places: int
    strings: list[str]
    string_ids: dict[str, int]
    sku_index: dict[str, int]
    rule_ids: list[str]
    rules: list[dict[str, Any]]
    nodes: list[str]

    @classmethod
    def of(cls, tables: dict[str, Any]) -> Tables:
        strings = list(tables["strings"])
        return cls(
            currency=tables["currency"], places=tables["places"], strings=strings,
            string_ids={s: i for i, s in enumerate(strings)},
            sku_index={sku: i for i, sku in enumerate(tables["skus"])},
            rule_ids=[r["id"] for r in tables["rules"]], rules=list(tables["rules"]),
            nodes=list(tables["nodes"]),
        )


def encode(request: Request, tables: Tables, coupon_set: Callable[[str], int],
           spent: Callable[[str], bool]) -> Encoded:
    """`coupon_set(normal code)` is the set index or -1; `spent(normal code)` the
    redemption state."""
    ids = tables.string_ids
    extras: list[str] = []
    extra_ids: dict[str, int] = {}
    base = len(tables.strings)

    def sid(text: str) -> int:
        found = ids.get(text)
        if found is not None:
            return found
        if text not in extra_ids:
            extra_ids[text] = base + len(extras)
            extras.append(text)
        return extra_ids[text]

    customer = request.customer
    header = [
        len(request.lines), request.at, sid(request.channel), sid(request.fulfillment),
        sid(request.pop), int(customer is not None), sid(customer.tier if customer else ""),
        customer.orders if customer else 0, int(bool(customer and customer.referred)),
        int(request.prefer == "instant"),
    ]
    # sorted before interning, so the ids of unknown tags do not depend on set order
    tags = sorted({sid(t) for t in sorted(customer.tags)}) if customer else []
    codes: list[str] = []
    coupon_words: list[int] = []
    seen: set[str] = set()
    for code in request.coupons:
        normal = normalize_code(code)
        if normal in seen:
            continue
        seen.add(normal)
        codes.append(code)
        index = coupon_set(normal) if normal else -1
        coupon_words += [index, int(index >= 0 and spent(normal))]
    words = [*header, len(tags), len(codes)]
    sku_index = tables.sku_index
    for line in request.lines:
        words += (sku_index[line.sku], line.qty)
    words += tags
    words += coupon_words
    return Encoded(words, extras, codes)


def decode(out: Sequence[int], request: Request, encoded: Encoded, tables: Tables) -> dict[str, Any]:
    """The quote of spec section 8 from the module's answer."""
    strings, extras, places = tables.strings, encoded.extras, tables.places
    pos = OUT_HEADER_WORDS
    lines = []
    for line in request.lines:
        unit, base, cut, line_net, line_instant, line_wallet, line_points = out[
            pos : pos + LINE_WORDS]
        lines.append({"sku": line.sku, "qty": line.qty, "unit_price": unit, "base": base,
                      "discount": cut, "net": line_net, "cashback_instant": line_instant,
                      "cashback_wallet": line_wallet, "points": line_points})
        pos += LINE_WORDS
    subtotal, discount, net, instant, payable, wallet_total, point_total = out[pos : pos + 7]
    totals = {"subtotal": subtotal, "discount": discount, "net": net,
              "cashback_instant": instant, "payable": payable,
              "cashback_wallet": wallet_total, "points": point_total}
    pos += TOTAL_WORDS

    def text(string_id: int) -> str:
        return strings[string_id] if string_id < len(strings) else extras[string_id - len(strings)]

    def value(kind: int, raw: int) -> Any:
        if kind == T_BOOL:
            return bool(raw)
        if kind == T_STRING:
            return text(raw)
        if kind == T_TIME:
            return format_utc(raw)
        if kind == T_SET:
            return sorted(request.customer.tags) if request.customer else []
        return raw

    rule_ids, rule_tables = tables.rule_ids, tables.rules
    end = pos + RULE_OUT_WORDS * len(rule_ids)
    step = RULE_OUT_WORDS
    amounts = out[pos + RO_AMOUNT : end : step]
    rules: list[dict[str, Any]] = []
    append = rules.append
    for index, (rule_id, status) in enumerate(zip(rule_ids, out[pos:end:step])):
        if status > STATUS_NOT_ELIGIBLE:  # no_items, superseded, inactive, coupon_required
            append({"rule": rule_id, "status": STATUSES[status]})
        elif status == STATUS_APPLIED:
            append({"rule": rule_id, "status": "applied", "amount": amounts[index]})
        elif status == STATUS_CAPPED:
            at = pos + step * index
            append({"rule": rule_id, "status": "capped", "amount": amounts[index],
                    "uncapped": out[at + RO_UNCAPPED]})
        else:
            at = pos + step * index
            append({"rule": rule_id, "status": "not_eligible",
                    "failed": _failed(rule_tables[index], tables.nodes, out[at + RO_FAILED],
                                      out[at + RO_FAILED_REF]),
                    "value": value(out[at + RO_VALUE_TYPE], out[at + RO_VALUE])})
    pos = end

    wallet = []
    for _ in range(out[pos]):
        rule, amount, vests, lapses, referrer = out[pos + 1 : pos + 1 + WALLET_WORDS]
        wallet.append({"rule": rule_ids[rule], "amount": amount, "vests_at": format_utc(vests),
                       "lapses_at": None if lapses == NONE else format_utc(lapses),
                       "to": "referrer" if referrer else "customer"})
        pos += WALLET_WORDS
    pos += 1
    credits = []
    for _ in range(out[pos]):
        rule, amount, lapses = out[pos + 1 : pos + 1 + CREDIT_WORDS]
        credits.append({"rule": rule_ids[rule], "amount": amount,
                        "toward": rule_tables[rule]["toward"],
                        "lapses_at": None if lapses == NONE else format_utc(lapses)})
        pos += CREDIT_WORDS
    pos += 1
    nudges = []
    for _ in range(out[pos]):
        rule, missing, kind, raw = out[pos + 1 : pos + 1 + NUDGE_WORDS]
        nudges.append({"rule": rule_ids[rule], "missing": missing,
                       "gives": _gives(rule_tables[rule], kind, raw, places)})
        pos += NUDGE_WORDS
    pos += 1
    coupons = []
    for code in encoded.codes:
        status, rule, reason = out[pos : pos + COUPON_OUT_WORDS]
        pos += COUPON_OUT_WORDS
        shown: dict[str, Any] = {"code": code, "status": COUPON_STATUSES[status]}
        if status == COUPON_NOT_APPLICABLE:
            shown["rule"] = None if rule < 0 else rule_ids[rule]
            shown["reason"] = "unused" if rule < 0 else STATUSES[reason]
        coupons.append(shown)
    return {"currency": tables.currency, "lines": lines, "totals": totals, "wallet": wallet,
            "credits": credits, "rules": rules, "nudges": nudges, "coupons": coupons}


def _failed(rule: dict[str, Any], nodes: list[str], failed: int, ref: int) -> str:
    if failed == FAILED_NODE:
        return nodes[ref]
    if failed == FAILED_REFERRED:
        return "customer.referred"
    if failed == FAILED_TIER:
        return f"{rule['basis']} >= {rule['lowest']}"
    return str(rule["by"])


def _gives(rule: dict[str, Any], kind: int, raw: int, places: int) -> str:
    if kind < 0:
        return str(rule["gives"])
    if kind == VALUE_PERCENT:
        return f"{rule['key']} {format_percent(raw)}"
    if kind == VALUE_PER_UNIT:
        return f"{rule['key']} {format_amount(raw, places)} per unit"
    return f"{rule['key']} {format_amount(raw, places)}"
