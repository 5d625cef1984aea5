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
    FAILED_KEY,
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
    failed: list[tuple[str | None, ...]]  # per rule, by FAILED_*: see _failed_texts

    @classmethod
    def of(cls, tables: dict[str, Any]) -> Tables:
        strings = list(tables["strings"])
        return cls(
            currency=tables["currency"], places=tables["places"], strings=strings,
            string_ids={s: i for i, s in enumerate(strings)},
            sku_index={sku: i for i, sku in enumerate(tables["skus"])},
            rule_ids=[r["id"] for r in tables["rules"]], rules=list(tables["rules"]),
            nodes=list(tables["nodes"]),
            failed=[_failed_texts(rule) for rule in tables["rules"]],
        )


def encode(request: Request, tables: Tables, coupon_set: Callable[[str], int],
           spent: Callable[[str], bool]) -> Encoded:
    """`coupon_set(normal code)` is the set index or -1; `spent(normal code)` the
    redemption state."""
    ids = tables.string_ids
    extras: list[str] = []
    base = len(tables.strings)

    def sid(text: str) -> int:
        found = ids.get(text)
        if found is None:
            if text in extras:
                return base + extras.index(text)
            extras.append(text)
            return base + len(extras) - 1
        return found

    customer = request.customer
    if customer is None:
        words = [len(request.lines), request.at, sid(request.channel),
                 sid(request.fulfillment), sid(request.pop), 0, sid(""), 0, 0,
                 int(request.prefer == "instant")]
        tags: list[int] = []
    else:
        words = [len(request.lines), request.at, sid(request.channel),
                 sid(request.fulfillment), sid(request.pop), 1, sid(customer.tier),
                 customer.orders, int(customer.referred), int(request.prefer == "instant")]
        # sorted before interning, so the ids of unknown tags do not depend on set order
        tags = sorted({sid(t) for t in sorted(customer.tags)})
    codes: list[str] = []
    coupon_words: list[int] = []
    if request.coupons:
        seen: set[str] = set()
        for code in request.coupons:
            normal = normalize_code(code)
            if normal in seen:
                continue
            seen.add(normal)
            codes.append(code)
            index = coupon_set(normal) if normal else -1
            coupon_words += (index, int(index >= 0 and spent(normal)))
    words += (len(tags), len(codes))
    sku_index = tables.sku_index
    for sku, qty in request.lines:
        words += (sku_index[sku], qty)
    words += tags
    words += coupon_words
    return Encoded(words, extras, codes)


def decode(out: Sequence[int], request: Request, encoded: Encoded, tables: Tables) -> dict[str, Any]:
    """The quote of spec section 8 from the module's answer.

    Written for CPython's speed, since a PoP runs it for every quote: a dict per line and per
    rule is most of the host's cost, so the loops build those in comprehensions and do the
    rest only for the few rules that carry figures.
    """
    rule_ids, nodes, places = tables.rule_ids, tables.nodes, tables.places
    pos = OUT_HEADER_WORDS
    end = pos + LINE_WORDS * len(request.lines)
    lines = [{"sku": line[0], "qty": line[1], "unit_price": unit, "base": base, "discount": cut,
              "net": net, "cashback_instant": instant, "cashback_wallet": wallet,
              "points": points}
             for line, unit, base, cut, net, instant, wallet, points in zip(
                 request.lines, out[pos:end:LINE_WORDS], out[pos + 1:end:LINE_WORDS],
                 out[pos + 2:end:LINE_WORDS], out[pos + 3:end:LINE_WORDS],
                 out[pos + 4:end:LINE_WORDS], out[pos + 5:end:LINE_WORDS],
                 out[pos + 6:end:LINE_WORDS])]
    subtotal, discount, net, instant, payable, wallet_total, point_total = out[end:end + 7]
    totals = {"subtotal": subtotal, "discount": discount, "net": net,
              "cashback_instant": instant, "payable": payable,
              "cashback_wallet": wallet_total, "points": point_total}
    pos = end + TOTAL_WORDS
    end = pos + RULE_OUT_WORDS * len(rule_ids)
    statuses = out[pos:end:RULE_OUT_WORDS]
    rules: list[dict[str, Any]] = [{"rule": rule_id, "status": STATUSES[status]}
                                   for rule_id, status in zip(rule_ids, statuses)]
    index = -1
    for status in statuses:
        index += 1
        if status > STATUS_NOT_ELIGIBLE:  # no_items, superseded, inactive, coupon_required
            continue
        at = pos + RULE_OUT_WORDS * index
        report = rules[index]
        if status == STATUS_NOT_ELIGIBLE:
            failed = out[at + RO_FAILED]
            report["failed"] = (nodes[out[at + RO_FAILED_REF]] if failed == FAILED_NODE
                                else tables.failed[index][failed])
            report["value"] = _value(out[at + RO_VALUE_TYPE], out[at + RO_VALUE], request,
                                     encoded, tables)
        else:
            report["amount"] = out[at + RO_AMOUNT]
            if status == STATUS_CAPPED:
                report["uncapped"] = out[at + RO_UNCAPPED]
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
                        "toward": tables.rules[rule]["toward"],
                        "lapses_at": None if lapses == NONE else format_utc(lapses)})
        pos += CREDIT_WORDS
    pos += 1
    nudges = []
    for _ in range(out[pos]):
        rule, missing, kind, raw = out[pos + 1 : pos + 1 + NUDGE_WORDS]
        nudges.append({"rule": rule_ids[rule], "missing": missing,
                       "gives": _gives(tables.rules[rule], kind, raw, places)})
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


def _value(kind: int, raw: int, request: Request, encoded: Encoded, tables: Tables) -> Any:
    """The value a failed condition saw, as spec section 8 shows it."""
    if kind == T_BOOL:
        return bool(raw)
    if kind == T_STRING:
        strings = tables.strings
        return strings[raw] if raw < len(strings) else encoded.extras[raw - len(strings)]
    if kind == T_TIME:
        return format_utc(raw)
    if kind == T_SET:
        return sorted(request.customer.tags) if request.customer else []
    return raw


_PLAIN_FAILED: tuple[str | None, ...] = tuple(
    "customer.referred" if kind == FAILED_REFERRED else None for kind in range(FAILED_KEY + 1))


def _failed_texts(rule: dict[str, Any]) -> tuple[str | None, ...]:
    """What `failed` says for each FAILED_* the module can report of this rule but the node
    kind, whose text is the condition's own (`Tables.nodes`)."""
    if "basis" not in rule and "by" not in rule:
        return _PLAIN_FAILED  # shared: most rules, and a 1,000-rule release loads faster
    texts = list(_PLAIN_FAILED)
    if "basis" in rule:
        texts[FAILED_TIER] = f"{rule['basis']} >= {rule['lowest']}"
    if "by" in rule:
        texts[FAILED_KEY] = str(rule["by"])
    return tuple(texts)


def _gives(rule: dict[str, Any], kind: int, raw: int, places: int) -> str:
    if kind < 0:
        return str(rule["gives"])
    if kind == VALUE_PERCENT:
        return f"{rule['key']} {format_percent(raw)}"
    if kind == VALUE_PER_UNIT:
        return f"{rule['key']} {format_amount(raw, places)} per unit"
    return f"{rule['key']} {format_amount(raw, places)}"
