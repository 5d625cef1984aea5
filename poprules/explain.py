"""A quote as a readable report for people (the `poprules explain` command)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from poprules.currency import DECIMALS, format_amount

_MARK = {"applied": "+", "capped": "+"}


def render(answer: dict[str, Any], *, program: str, at: str, points_rules: frozenset[str]) -> str:
    """`points_rules` are shown in points, every other amount in the currency."""
    places = DECIMALS[answer["currency"]]

    def money(minor: int) -> str:
        return format_amount(minor, places)

    out: list[str] = [f"{program} · {answer['currency']} · {at}", ""]
    header = ("sku", "qty", "unit", "base", "discount", "net", "instant", "wallet", "points")
    rows = [header] + [
        (ln["sku"], str(ln["qty"]), money(ln["unit_price"]), money(ln["base"]),
         money(ln["discount"]), money(ln["net"]), money(ln["cashback_instant"]),
         money(ln["cashback_wallet"]), str(ln["points"]))
        for ln in answer["lines"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out.append("Lines")
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        out.append("  " + "  ".join(cells))
    t = answer["totals"]
    out += [
        "",
        (f"Pay now {money(t['payable'])}  (subtotal {money(t['subtotal'])}, discounts "
        f"{money(t['discount'])}, instant cashback {money(t['cashback_instant'])})"),
        f"Wallet cashback {money(t['cashback_wallet'])}  ·  points {t['points']}",
    ]
    for w in answer["wallet"]:
        lapses = f", lapses {w['lapses_at']}" if w["lapses_at"] else ""
        out.append(f"  {money(w['amount'])} to the {w['to']} from {w['rule']}: "
                   f"spendable {w['vests_at']}{lapses}")
    for c in answer["credits"]:
        lapses = f", lapses {c['lapses_at']}" if c["lapses_at"] else ""
        out.append(f"  credit {money(c['amount'])} from {c['rule']} toward {c['toward']}{lapses}")
    out += ["", "Rules (evaluation order)"]
    width = max((len(r["rule"]) for r in answer["rules"]), default=0)
    for r in answer["rules"]:
        fmt = str if r["rule"] in points_rules else money
        out.append(f"  {_MARK.get(r['status'], '-')} {r['rule'].ljust(width)}  {_why(r, fmt)}")
    if answer["nudges"]:
        out += ["", "Nudges"]
        for n in answer["nudges"]:
            out.append(f"  spend {money(n['missing'])} more for {n['gives']} ({n['rule']})")
    if answer["coupons"]:
        out += ["", "Coupons"]
        for c in answer["coupons"]:
            extra = ""
            if c["status"] == "not_applicable":
                extra = (f": {c['rule']} is {c['reason']}" if c["rule"] else ": no rule uses it")
            out.append(f"  {json.dumps(c['code'], ensure_ascii=False)}: {c['status']}{extra}")
    return "\n".join(out) + "\n"


def _why(r: dict[str, Any], fmt: Callable[[int], str]) -> str:
    status: str = r["status"]
    if status == "applied":
        return f"applied: {fmt(r['amount'])}"
    if status == "capped":
        return f"capped: {fmt(r['amount'])} (would be {fmt(r['uncapped'])})"
    if status == "not_eligible":
        return f"not eligible: {r['failed']} is false (value: {json.dumps(r['value'])})"
    reasons = {
        "inactive": "inactive: outside its schedule",
        "coupon_required": "needs a usable coupon code",
        "no_items": "no items: no line it rewards (or their net is 0)",
        "superseded": "superseded by an exclusive rule or a better offer in its group",
    }
    return reasons.get(status, status)
