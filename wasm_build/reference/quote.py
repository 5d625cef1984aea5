"""The reference evaluator: a checked program and a request → the quote of spec section 8.

It is a plain interpreter of the rule model, written to be obviously right rather than
fast; the compiled WebAssembly module must give exactly the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from poprules.codes import normalize_code
from poprules.currency import format_amount
from poprules.literals import format_percent, format_utc
from poprules.request import Request
from wasm_build.lang.analysis import and_chain, is_spend, spend_threshold
from wasm_build.lang.ast import Node
from wasm_build.lang.model import (
    Amount,
    Cashback,
    CouponSet,
    Credit,
    Discount,
    FreeItems,
    Keyed,
    Lane,
    Percent,
    PerUnit,
    Points,
    Program,
    Rule,
    Stacking,
    Tiers,
    Value,
    ValueSpec,
)
from wasm_build.reference.conditions import (
    LineView,
    OrderView,
    evaluate,
    explain_false,
    holds,
)
from wasm_build.reference.rewards import (
    Eligible,
    apply_caps,
    free_item_figures,
    instant_clamp,
    money_figures,
    points_figures,
)
from wasm_build.reference.schedule import is_active

_COMPUTED = ("applied", "capped")


@dataclass
class _Line:
    sku: str
    qty: int
    unit_price: int
    base: int
    net: int
    category: str
    brand: str
    tags: frozenset[str]
    attributes: Mapping[str, Any]
    instant: int = 0
    wallet: int = 0
    points: int = 0

    def view(self) -> LineView:
        return LineView(self.sku, self.category, self.brand, self.tags, self.unit_price,
                        self.base, self.net, self.qty, self.attributes)


@dataclass
class _Outcome:
    """What a rule would do on the current state; nothing is changed until it is applied."""

    rule: Rule
    status: str
    failed: str | None = None
    value: Any = None
    figures: dict[int, int] = field(default_factory=dict)
    amount: int = 0
    uncapped: int = 0
    lane: Lane | None = None  # cashback lane once `choice` is settled
    blocks: frozenset[int] = frozenset()  # lines an exclusive rule takes out of the phase

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule.id, "status": self.status}
        if self.status in _COMPUTED:
            out["amount"] = self.amount
        if self.status == "capped":
            out["uncapped"] = self.uncapped
        if self.status == "not_eligible":
            out["failed"] = self.failed
            out["value"] = self.value
        return out


class _Evaluation:
    def __init__(self, program: Program, request: Request) -> None:
        self.program = program
        self.request = request
        self.zone = program.zone
        catalog = program.catalog.by_sku
        self.lines = [
            _Line(ln.sku, ln.qty, catalog[ln.sku].price, catalog[ln.sku].price * ln.qty,
                  catalog[ln.sku].price * ln.qty, catalog[ln.sku].category,
                  catalog[ln.sku].brand, catalog[ln.sku].tags, catalog[ln.sku].attributes)
            for ln in request.lines
        ]
        self.subtotal = sum(ln.base for ln in self.lines)
        self.usable_sets = _usable_sets(program.coupons, request)
        self.blocked: set[int] = set()
        self.phase = 0
        self.outcomes: dict[str, _Outcome] = {}
        self.wallet: list[dict[str, Any]] = []
        self.credits: list[dict[str, Any]] = []
        self.nudges: list[tuple[int, str, dict[str, Any]]] = []

    # --- state views ---------------------------------------------------------------------

    def order(self) -> OrderView:
        customer = self.request.customer
        values = {
            "order.subtotal": self.subtotal,
            "order.net": sum(ln.net for ln in self.lines),
            "order.units": sum(ln.qty for ln in self.lines),
            "order.lines": len(self.lines),
            "order.channel": self.request.channel,
            "order.fulfillment": self.request.fulfillment,
            "order.pop": self.request.pop,
            "order.now": self.request.at,
            "customer.known": customer is not None,
            "customer.tier": customer.tier if customer else "",
            "customer.orders": customer.orders if customer else 0,
            "customer.tags": customer.tags if customer else frozenset(),
            "customer.referred": customer.referred if customer else False,
        }
        return OrderView(values, tuple(ln.view() for ln in self.lines))

    # --- the run -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        order = self.program.evaluation_order
        for position, rule in enumerate(order):
            if rule.phase != self.phase:
                self.phase, self.blocked = rule.phase, set()
            if rule.id in self.outcomes:
                continue  # a best_of member, settled at its group's place
            if rule.stacking is Stacking.BEST_OF:
                self.best_of(rule, [r for r in order[position:] if r.group == rule.group])
            else:
                outcome = self.assess(rule)
                self.outcomes[rule.id] = outcome
                self.apply(outcome)
        return self.quote(order)

    def best_of(self, first: Rule, members: list[Rule]) -> None:
        assert first is members[0]
        outcomes = [self.assess(rule) for rule in members]
        computed = [o for o in outcomes if o.status in _COMPUTED]
        winner = max(computed, key=lambda o: o.amount, default=None)  # first wins ties
        for outcome in outcomes:
            if outcome.status in _COMPUTED and outcome is not winner:
                outcome.status = "superseded"
            self.outcomes[outcome.rule.id] = outcome
        if winner is not None:
            self.apply(winner)

    def assess(self, rule: Rule) -> _Outcome:
        """Run a rule's checks in the order of spec 7 and compute its figures."""
        request = self.request
        if not is_active(rule.active, request.at, self.zone):
            return _Outcome(rule, "inactive")
        if rule.coupon is not None and rule.coupon not in self.usable_sets:
            return _Outcome(rule, "coupon_required")
        order = self.order()
        referred = bool(request.customer and request.customer.referred)
        referrer_ok = not (isinstance(rule.reward, Cashback) and rule.reward.to_referrer) or referred
        if not holds(rule.when, order):
            assert rule.when is not None
            failed, value = explain_false(rule.when, order)
            if referrer_ok:
                self.nudge_from_when(rule, order)
            return _Outcome(rule, "not_eligible", failed, value)
        if not referrer_ok:
            return _Outcome(rule, "not_eligible", "customer.referred", False)
        spec = _value_spec(rule)
        if spec is not None:
            self.nudge_from_tiers(rule, spec, order)
        value, miss = self.resolve(spec, order)
        if miss is not None:
            return _Outcome(rule, "not_eligible", miss[0], miss[1])
        matching = [i for i, ln in enumerate(self.lines) if holds(rule.items, order, order.lines[i])]
        if not matching:
            return _Outcome(rule, "no_items")
        eligible = [
            Eligible(i, self.lines[i].qty, self.lines[i].net, self.lines[i].instant)
            for i in matching if i not in self.blocked
        ]
        if not eligible:
            return _Outcome(rule, "superseded")
        if sum(ln.net for ln in eligible) == 0:
            return _Outcome(rule, "no_items")
        return self.compute(rule, value, eligible)

    def resolve(self, spec: ValueSpec | None, order: OrderView) -> tuple[
        Value | None, tuple[str, Any] | None
    ]:
        """Pick the tier step or keyed value that applies; or say why none does."""
        if isinstance(spec, Tiers):
            basis = evaluate(spec.basis.node, order)
            reached = [s for s in spec.steps if basis >= s.min]
            if not reached:
                lowest = format_amount(spec.steps[0].min, self.program.places)
                return None, (f"{spec.basis.text} >= {lowest}", basis)
            return reached[-1].value, None
        if isinstance(spec, Keyed):
            key = evaluate(spec.by.node, order)
            if key not in spec.values:
                return None, (spec.by.text, key)
            return spec.values[key], None
        return spec, None

    def compute(self, rule: Rule, value: Value | None, eligible: list[Eligible]) -> _Outcome:
        reward = rule.reward
        outcome = _Outcome(rule, "applied")
        if isinstance(reward, Credit):
            assert isinstance(value, Amount)
            amount = value.minor
            if rule.cap.order is not None and amount > rule.cap.order:
                outcome.status, amount = "capped", rule.cap.order
            outcome.amount, outcome.uncapped = amount, value.minor
            if rule.stacking is Stacking.EXCLUSIVE and amount > 0:
                outcome.blocks = frozenset(ln.index for ln in eligible if ln.net > 0)
            return outcome
        if isinstance(reward, FreeItems):
            figures = free_item_figures(reward.buy, reward.get, eligible)
        elif isinstance(reward, Points):
            figures = points_figures(reward.every, reward.award, eligible)
        else:
            assert value is not None
            figures = money_figures(value, eligible, self.program.rounding)
        if isinstance(reward, Cashback):
            lane = reward.lane
            if lane is Lane.CHOICE:
                lane = Lane.INSTANT if self.request.prefer == "instant" else Lane.WALLET
            outcome.lane = lane
            if lane is Lane.INSTANT:
                figures = instant_clamp(figures, eligible)
        uncapped = sum(figures.values())
        figures = apply_caps(figures, rule.cap)
        outcome.figures, outcome.uncapped, outcome.amount = figures, uncapped, sum(figures.values())
        if outcome.amount < uncapped:
            outcome.status = "capped"
        if rule.stacking is Stacking.EXCLUSIVE:
            outcome.blocks = frozenset(i for i, v in figures.items() if v > 0)
        return outcome

    def apply(self, outcome: _Outcome) -> None:
        if outcome.status not in _COMPUTED:
            return
        rule, reward = outcome.rule, outcome.rule.reward
        for i, figure in outcome.figures.items():
            line = self.lines[i]
            if isinstance(reward, (Discount, FreeItems)):
                line.net -= figure
            elif isinstance(reward, Points):
                line.points += figure
            elif isinstance(reward, Cashback):
                if outcome.lane is Lane.INSTANT:
                    line.instant += figure
                elif not reward.to_referrer:
                    line.wallet += figure
        self.blocked |= outcome.blocks
        at = self.request.at
        if isinstance(reward, Cashback) and outcome.lane is Lane.WALLET and outcome.amount:
            vests = at + reward.vest
            lapses = None if reward.expires is None else format_utc(vests + reward.expires)
            self.wallet.append({
                "rule": rule.id, "amount": outcome.amount, "vests_at": format_utc(vests),
                "lapses_at": lapses, "to": "referrer" if reward.to_referrer else "customer",
            })
        if isinstance(reward, Credit) and outcome.amount:
            lapses = None if reward.expires is None else format_utc(at + reward.expires)
            self.credits.append({
                "rule": rule.id, "amount": outcome.amount, "toward": reward.toward.text,
                "lapses_at": lapses,
            })

    # --- nudges --------------------------------------------------------------------------

    def nudge_from_when(self, rule: Rule, order: OrderView) -> None:
        """A false `when` nudges when its only false operand is a spend below a threshold."""
        assert rule.when is not None
        operands = and_chain(rule.when.node)
        false = [o for o in operands if not evaluate(o, order)]
        if len(false) != 1:
            return
        missing = _missing(false[0], order)
        if missing is None:
            return
        spec = _value_spec(rule)
        if isinstance(spec, Tiers):
            basis = evaluate(spec.basis.node, order)
            reached = [s for s in spec.steps if basis >= s.min]
            value: Value | None = (reached or list(spec.steps))[-1 if reached else 0].value
        elif isinstance(spec, Keyed):
            value = spec.values.get(evaluate(spec.by.node, order))
            if value is None:
                return
        else:
            value = spec
        self.add_nudge(rule, missing, value)

    def nudge_from_tiers(self, rule: Rule, spec: ValueSpec, order: OrderView) -> None:
        """A value tiered on a spend nudges toward the next step above the basis."""
        if not isinstance(spec, Tiers) or not is_spend(spec.basis.node):
            return
        basis = evaluate(spec.basis.node, order)
        above = [s for s in spec.steps if s.min > basis]
        if above:
            self.add_nudge(rule, above[0].min - basis, above[0].value)

    def add_nudge(self, rule: Rule, missing: int, value: Value | None) -> None:
        gives = f"{rule.reward.key} {self.describe(rule, value)}"
        self.nudges.append((missing, rule.id, {"rule": rule.id, "missing": missing, "gives": gives}))

    def describe(self, rule: Rule, value: Value | None) -> str:
        reward, places = rule.reward, self.program.places
        if isinstance(reward, FreeItems):
            return f"buy {reward.buy} get {reward.get}"
        if isinstance(reward, Points):
            return f"{reward.award} per {format_amount(reward.every, places)}"
        if isinstance(value, Percent):
            return format_percent(value.ppm)
        if isinstance(value, PerUnit):
            return f"{format_amount(value.minor, places)} per unit"
        assert isinstance(value, Amount)
        return format_amount(value.minor, places)

    # --- the answer ----------------------------------------------------------------------

    def quote(self, order: tuple[Rule, ...]) -> dict[str, Any]:
        lines = [
            {
                "sku": ln.sku, "qty": ln.qty, "unit_price": ln.unit_price, "base": ln.base,
                "discount": ln.base - ln.net, "net": ln.net, "cashback_instant": ln.instant,
                "cashback_wallet": ln.wallet, "points": ln.points,
            }
            for ln in self.lines
        ]
        net = sum(ln.net for ln in self.lines)
        instant = sum(ln.instant for ln in self.lines)
        totals = {
            "subtotal": self.subtotal, "discount": self.subtotal - net, "net": net,
            "cashback_instant": instant, "payable": net - instant,
            "cashback_wallet": sum(ln.wallet for ln in self.lines),
            "points": sum(ln.points for ln in self.lines),
        }
        rank = {rule.id: i for i, rule in enumerate(order)}
        nudges = [n for _, _, n in sorted(self.nudges, key=lambda t: (t[0], rank[t[1]]))]
        return {
            "currency": self.program.currency,
            "lines": lines,
            "totals": totals,
            "wallet": self.wallet,
            "credits": self.credits,
            "rules": [self.outcomes[rule.id].report() for rule in order],
            "nudges": nudges,
            "coupons": self.coupon_report(order),
        }

    def coupon_report(self, order: tuple[Rule, ...]) -> list[dict[str, Any]]:
        reports: list[dict[str, Any]] = []
        seen: set[str] = set()
        spent = {normalize_code(c) for c in self.request.spent_coupons}
        for code in self.request.coupons:
            normal = normalize_code(code)
            if normal in seen:
                continue
            seen.add(normal)
            coupon_set = _set_of(self.program.coupons, normal)
            report: dict[str, Any] = {"code": code}
            if coupon_set is None:
                report["status"] = "unknown"
            elif coupon_set.expires is not None and self.request.at >= coupon_set.expires:
                report["status"] = "expired"
            elif normal in spent:
                report["status"] = "spent"
            else:
                needing = [r for r in order if r.coupon == coupon_set.id]
                if any(self.outcomes[r.id].status in _COMPUTED for r in needing):
                    report["status"] = "valid"
                elif needing:
                    report.update(status="not_applicable", rule=needing[0].id,
                                  reason=self.outcomes[needing[0].id].status)
                else:
                    report.update(status="not_applicable", rule=None, reason="unused")
            reports.append(report)
        return reports


def _set_of(sets: tuple[CouponSet, ...], normal: str) -> CouponSet | None:
    if not normal:
        return None
    return next((s for s in sets if normal in s.codes), None)


def _usable_sets(sets: tuple[CouponSet, ...], request: Request) -> frozenset[str]:
    """Sets with a code that is known, not expired and not spent (spec 6)."""
    spent = {normalize_code(c) for c in request.spent_coupons}
    usable = set()
    for code in request.coupons:
        normal = normalize_code(code)
        coupon_set = _set_of(sets, normal)
        if coupon_set is None or normal in spent:
            continue
        if coupon_set.expires is not None and request.at >= coupon_set.expires:
            continue
        usable.add(coupon_set.id)
    return frozenset(usable)


def _value_spec(rule: Rule) -> ValueSpec | None:
    reward = rule.reward
    if isinstance(reward, (Discount, Cashback)):
        return reward.value
    if isinstance(reward, Credit):
        return reward.amount
    return None


def _missing(node: Node, order: OrderView) -> int | None:
    """How much more spend makes a false `S >= X` (or `S > X`, ...) operand true."""
    shape = spend_threshold(node)
    if shape is None:
        return None
    spend, threshold, strict = shape
    gap: int = evaluate(threshold, order) - evaluate(spend, order)
    return gap + 1 if strict else gap


def quote(program: Program, request: Request) -> dict[str, Any]:
    """The full answer of spec section 8 for a checked program and a parsed request."""
    return _Evaluation(program, request).run()
