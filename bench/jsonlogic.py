"""A rule program as JSONLogic, so `make bench` can time datalogic-py on the same carts.

datalogic-py (JSONLogic with a Rust core) is the yardstick of issue 4's speed target. It cannot
run our language, so this module translates the part of a program that JSONLogic can say and
the benchmark times that. The translation is deliberately generous to datalogic: wherever it
cannot express something it leaves the work out rather than doing it in Python, so datalogic
always does *less* than the compiled module, and a ratio measured against it understates the
module's advantage.

Translated (a rule is counted as translated when all of this applies to it):

- rules whose reward is `discount` or `cashback` with a plain value: a percent (rounded per
  line in the program's mode, in integers), a fixed amount (clamped to the eligible net and
  spread over the eligible lines in proportion to their net, each line getting the floor of
  its share) or `{per_unit: X}` (`min(qty × X, net)`);
- its eligibility: `active` (`from`, `until`, `days`, `hours`, with the wrap-around rule of
  spec 3), `coupon` (the host passes the ids of the usable coupon sets), `when`, `to:
  referrer` and `items`. Conditions translate whole: every name, operator, `in` form and
  aggregate of spec 5;
- `cap.line`.

Skipped, and counted by reason: rules with a tiered or keyed value, and `free_items`,
`points` and `credit` rewards.

Not modelled even for translated rules (datalogic does none of this work): the order of
evaluation inside a phase (every phase-1 rule reads the cart as it came in; phase 2 reads the
nets after all of phase 1, which the host applies between two evaluations), `cap.order`,
stacking (`exclusive`, `best_of`), the instant clamp and lanes (all cashback is summed), the
largest-remainder hand-out of a fixed amount's leftover minor units, and everything of the
answer but the per-line figures: statuses, `failed`/`value`, nudges, wallet, credits, coupon
statuses. Its answers therefore differ from the reference evaluator's wherever those matter;
`check_conditions` verifies instead that every translated condition gives the reference
evaluator's answer on every cart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import datalogic_py

from poprules.codes import normalize_code
from poprules.literals import PPM, local_wall_clock
from poprules.request import Request
from wasm_build.lang.ast import (
    Aggregate,
    Arith,
    Compare,
    Const,
    InList,
    InSet,
    Logic,
    Name,
    Node,
    Not,
    Paren,
)
from wasm_build.lang.model import (
    Amount,
    Cashback,
    Credit,
    Discount,
    FreeItems,
    Percent,
    PerUnit,
    Points,
    Program,
    Rounding,
    Rule,
    Schedule,
    Tiers,
    Value,
)
from wasm_build.reference.conditions import LineView, OrderView, holds
from wasm_build.reference.schedule import is_active

JsonLogic = Any  # a JSONLogic expression: JSON-shaped Python values

_COMPARE = {"==": "===", "!=": "!==", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


# --- expressions --------------------------------------------------------------------------
#
# The data document is {"order": {...}, "customer": {...}, "coupons": [...], "clock": {...},
# "lines": [{...}]}. Inside `map`/`filter`/`some`/`none` the scope is the current line, so
# `item.x` is `{"var": "x"}` and an order-level name climbs `depth` scopes back to the root
# with datalogic's `{"val": [[depth], ...]}`.


def _root(path: str, depth: int) -> JsonLogic:
    if depth == 0:
        return {"var": path}
    return {"val": [[depth], *path.split(".")]}


def condition(node: Node, depth: int = 0) -> JsonLogic:
    """A checked expression as JSONLogic, evaluated `depth` scopes below the document root
    (0 at order level, 1 inside a map over the lines)."""
    if isinstance(node, Const):
        value = node.value
        assert isinstance(value, (bool, int, str)), node
        return value
    if isinstance(node, Name):
        if node.name.startswith("item."):
            assert depth > 0, node
            return {"var": node.name.removeprefix("item.")}
        return _root(node.name, depth)
    if isinstance(node, Paren):
        return condition(node.inner, depth)
    if isinstance(node, Not):
        return {"!": [condition(node.operand, depth)]}
    if isinstance(node, Logic):
        return {node.op: [condition(o, depth) for o in node.operands]}
    if isinstance(node, Arith):
        return {node.op: [condition(node.left, depth), condition(node.right, depth)]}
    if isinstance(node, Compare):
        return {_COMPARE[node.op]: [condition(node.left, depth), condition(node.right, depth)]}
    if isinstance(node, InList):
        found = {"in": [condition(node.value, depth), [condition(i, depth) for i in node.items]]}
        return {"!": [found]} if node.negated else found
    if isinstance(node, InSet):
        found = {"in": [condition(node.value, depth), condition(node.collection, depth)]}
        return {"!": [found]} if node.negated else found
    if isinstance(node, Aggregate):
        return _aggregate(node, depth)
    raise TypeError(node)


def _aggregate(node: Aggregate, depth: int) -> JsonLogic:
    lines = _root("lines", depth)
    test = condition(node.condition, depth + 1) if node.condition is not None else None
    if node.func == "any":
        return {"some": [lines, test]}
    if node.func == "all":  # JSONLogic's `all` is false on an empty list; spec 5 says true
        return {"none": [lines, {"!": [test]}]}
    chosen = lines if test is None else {"filter": [lines, test]}
    if node.func == "count":
        return {"length": [chosen]}
    assert node.func == "sum" and node.value is not None
    return {"+": {"map": [chosen, condition(node.value, depth + 1)]}}


def _floor_div(numerator: JsonLogic, denominator: JsonLogic) -> JsonLogic:
    """Exact integer floor division of non-negative integers (JSONLogic's `/` is a float
    division)."""
    return {"/": [{"-": [numerator, {"%": [numerator, denominator]}]}, denominator]}


def _rounded_percent(net: JsonLogic, ppm: int, rounding: Rounding) -> JsonLogic:
    """round(net × ppm / 1e6) in the program's mode, as `round_ratio` of spec 4.2."""
    product = {"*": [net, ppm]}
    if rounding is Rounding.DOWN:
        return _floor_div(product, PPM)
    if rounding is Rounding.HALF_UP:
        return _floor_div({"+": [{"*": [product, 2]}, PPM]}, 2 * PPM)
    quotient = _floor_div(product, PPM)
    twice_rest = {"*": [{"%": [product, PPM]}, 2]}
    return {"+": [quotient, {"if": [{">": [twice_rest, PPM]}, 1,
                                    {"===": [twice_rest, PPM]}, {"%": [quotient, 2]}, 0]}]}


def _schedule(schedule: Schedule) -> list[JsonLogic]:
    """The tests of `active`, on the instant and the local wall clock the host provides."""
    now = {"var": "order.now"}
    tests: list[JsonLogic] = []
    if schedule.start is not None:
        tests.append({">=": [now, schedule.start]})
    if schedule.until is not None:
        tests.append({"<": [now, schedule.until]})
    days = sorted(schedule.days) if schedule.days is not None else None

    def on(day: str) -> list[JsonLogic]:
        return [] if days is None else [{"in": [{"var": f"clock.{day}"}, days]}]

    if schedule.hours is None:
        return tests + on("day")
    start, end = schedule.hours
    time = {"var": "clock.time"}
    if start < end:
        return [*tests, {"<=": [start, time]}, {"<": [time, end]}, *on("day")]
    # A window that wraps midnight belongs to the day on which it starts.
    late = {"and": [{">=": [time, start]}, *on("day")]}
    early = {"and": [{"<": [time, end]}, *on("prev")]}
    return [*tests, {"or": [late, early]}]


def _gate(rule: Rule) -> list[JsonLogic]:
    """Every order-level check of a rule: schedule, coupon, `when`, referrer."""
    tests = _schedule(rule.active) if rule.active is not None else []
    if rule.coupon is not None:
        tests.append({"in": [rule.coupon, {"var": "coupons"}]})
    if rule.when is not None:
        tests.append(condition(rule.when.node))
    if isinstance(rule.reward, Cashback) and rule.reward.to_referrer:
        tests.append({"var": "customer.referred"})
    return tests


def _items(rule: Rule, depth: int) -> JsonLogic:
    return True if rule.items is None else condition(rule.items.node, depth)


def _figures(rule: Rule, value: Value, rounding: Rounding) -> JsonLogic:
    """The list of the rule's per-line figures at order level (0 on ineligible lines)."""
    net, qty = {"var": "net"}, {"var": "qty"}
    if isinstance(value, Amount):
        # Σ eligible net is computed once and bound by mapping over a one-element list (the
        # only `let` JSONLogic has); the inner map then sees it one scope up.
        total = {"+": {"map": [{"filter": [{"var": "lines"}, _items(rule, 1)]}, net]}}
        spread = _floor_div({"*": [{"min": [value.minor, {"val": [[1]]}]}, net]}, {"val": [[1]]})
        per_line: JsonLogic = {"if": [{"and": [_items(rule, 2), {">": [net, 0]}]},
                                   _capped(spread, rule), 0]}
        bound = {"map": [[total], {"map": [{"val": [[1], "lines"]}, per_line]}]}
        return {"reduce": [bound, {"var": "current"}, []]}
    if isinstance(value, Percent):
        raw = _rounded_percent(net, value.ppm, rounding)
    else:
        raw = {"min": [{"*": [qty, value.minor]}, net]}
    return {"map": [{"var": "lines"}, {"if": [_items(rule, 1), _capped(raw, rule), 0]}]}


def _capped(figure: JsonLogic, rule: Rule) -> JsonLogic:
    return figure if rule.cap.line is None else {"min": [figure, rule.cap.line]}


def _plain_value(rule: Rule) -> tuple[Value | None, str | None]:
    """The rule's plain value, or why it is skipped."""
    reward = rule.reward
    if isinstance(reward, FreeItems):
        return None, "free_items"
    if isinstance(reward, Points):
        return None, "points"
    if isinstance(reward, Credit):
        return None, "credit"
    assert isinstance(reward, (Discount, Cashback))
    if isinstance(reward.value, (Percent, Amount, PerUnit)):
        return reward.value, None
    return None, "tiered value" if isinstance(reward.value, Tiers) else "keyed value"


# --- a program ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Translation:
    """The translated rules of a program, in evaluation order, one JSONLogic list per phase
    whose items are the rules' per-line figure lists (`[]` when a rule's gate is closed)."""

    phase1: tuple[Rule, ...]
    phase2: tuple[Rule, ...]
    logic1: JsonLogic
    logic2: JsonLogic
    skipped: Mapping[str, int]  # reason → rules
    uses_clock: bool


def translate(program: Program) -> Translation:
    phases: dict[int, list[tuple[Rule, JsonLogic]]] = {1: [], 2: []}
    skipped: dict[str, int] = {}
    for rule in program.evaluation_order:
        value, reason = _plain_value(rule)
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        assert value is not None
        figures = _figures(rule, value, program.rounding)
        gate = _gate(rule)
        if gate:
            figures = {"if": [{"and": gate} if len(gate) > 1 else gate[0], figures, []]}
        phases[rule.phase].append((rule, figures))
    uses_clock = any(r.active is not None and (r.active.days is not None
                                               or r.active.hours is not None)
                     for rules in phases.values() for r, _ in rules)
    return Translation(tuple(r for r, _ in phases[1]), tuple(r for r, _ in phases[2]),
                       [f for _, f in phases[1]], [f for _, f in phases[2]],
                       dict(sorted(skipped.items())), uses_clock)


# --- evaluating -----------------------------------------------------------------------------


class DatalogicQuoter:
    """A request → the translated rules' per-line figures, with datalogic-py doing the rules.

    The host does what JSONLogic cannot: resolve the lines from the catalog, work out the
    usable coupon sets and the local wall clock, and apply phase 1's discounts before phase 2
    reads the nets. Both phases are compiled once; each cart is two evaluations on one session.
    """

    def __init__(self, program: Program) -> None:
        self.program = program
        self.translation = translate(program)
        engine = datalogic_py.Engine()
        self._phase1 = engine.compile(self.translation.logic1)
        self._phase2 = engine.compile(self.translation.logic2)
        self._session = engine.session()
        self._zone = program.zone
        self._items: dict[str, dict[str, Any]] = {
            item.sku: {"sku": item.sku, "category": item.category, "brand": item.brand,
                       "tags": sorted(item.tags), "price": item.price, **item.attributes}
            for item in program.catalog.items
        }
        self._sets = {code: coupon_set for coupon_set in program.coupons
                      for code in coupon_set.codes}

    def data(self, request: Request) -> dict[str, Any]:
        """The data document of a cart as it comes in (net = base)."""
        lines: list[dict[str, Any]] = []
        for line in request.lines:
            item = self._items[line.sku]
            base = item["price"] * line.qty
            lines.append({**item, "qty": line.qty, "base": base, "net": base})
        subtotal = sum(ln["base"] for ln in lines)
        customer = request.customer
        data: dict[str, Any] = {
            "order": {"subtotal": subtotal, "net": subtotal,
                      "units": sum(ln.qty for ln in request.lines), "lines": len(lines),
                      "channel": request.channel, "fulfillment": request.fulfillment,
                      "pop": request.pop, "now": request.at},
            "customer": {"known": customer is not None,
                         "tier": customer.tier if customer else "",
                         "orders": customer.orders if customer else 0,
                         "tags": sorted(customer.tags) if customer else [],
                         "referred": customer.referred if customer else False},
            "coupons": self._usable_sets(request),
            "lines": lines,
        }
        if self.translation.uses_clock:
            day, time = local_wall_clock(request.at, self._zone)
            data["clock"] = {"day": day, "prev": (day - 1) % 7, "time": time}
        return data

    def _usable_sets(self, request: Request) -> list[str]:
        """Sets with a literal code given, not expired and not spent (spec 6, a simulation)."""
        spent = {normalize_code(c) for c in request.spent_coupons}
        usable = set()
        for code in request.coupons:
            normal = normalize_code(code)
            found = self._sets.get(normal)
            if found is None or normal in spent:
                continue
            if found.expires is None or request.at < found.expires:
                usable.add(found.id)
        return sorted(usable)

    def quote(self, request: Request) -> dict[str, Any]:
        data = self.data(request)
        lines = data["lines"]
        phase1 = self._session.evaluate(self._phase1, data)
        for line, discount in zip(lines, _line_sums(phase1, len(lines))):
            line["net"] = max(line["base"] - discount, 0)
        data["order"]["net"] = sum(ln["net"] for ln in lines)
        phase2 = self._session.evaluate(self._phase2, data)
        cashback = _line_sums(phase2, len(lines))
        rules = {rule.id: sum(figures) for rule, figures in
                 zip(self.translation.phase1 + self.translation.phase2, phase1 + phase2)}
        return {
            "lines": [{"sku": ln["sku"], "qty": ln["qty"], "base": ln["base"],
                       "discount": ln["base"] - ln["net"], "net": ln["net"], "cashback": c}
                      for ln, c in zip(lines, cashback)],
            "rules": rules,
        }


def _line_sums(results: list[list[int]], count: int) -> list[int]:
    """Per-line totals of the rules' figure lists (a closed gate gave `[]`)."""
    columns = [figures for figures in results if figures]
    return [sum(column) for column in zip(*columns)] if columns else [0] * count


# --- checking the translation ---------------------------------------------------------------


def check_conditions(quoter: DatalogicQuoter, requests: Iterable[Request]) -> tuple[int, int]:
    """Evaluate every translated rule's gate and `items` with datalogic and with the
    reference evaluator's own functions, on each cart as it comes in; returns (checks made,
    disagreements). A timing of a wrong translation would be meaningless."""
    program = quoter.program
    rules = quoter.translation.phase1 + quoter.translation.phase2
    probe = [[{"and": [True, *_gate(rule)]}, {"map": [{"var": "lines"}, _items(rule, 1)]}]
             for rule in rules]
    compiled = datalogic_py.Engine().compile(probe)
    checks = wrong = 0
    for request in requests:
        data = quoter.data(request)
        order = _reference_order(program, request, data)
        usable = set(data["coupons"])
        for rule, (gate, items) in zip(rules, compiled.evaluate(data)):
            expected_gate = (
                is_active(rule.active, request.at, program.zone)
                and (rule.coupon is None or rule.coupon in usable)
                and holds(rule.when, order)
                and (not isinstance(rule.reward, Cashback) or not rule.reward.to_referrer
                     or bool(order.values["customer.referred"]))
            )
            expected_items = [holds(rule.items, order, line) for line in order.lines]
            checks += 1 + len(expected_items)
            wrong += (bool(gate) != expected_gate) + sum(
                bool(got) != want for got, want in zip(items, expected_items, strict=True))
    return checks, wrong


def _reference_order(program: Program, request: Request, data: dict[str, Any]) -> OrderView:
    """The reference evaluator's view of the same cart as it comes in."""
    catalog = program.catalog.by_sku
    lines = tuple(
        LineView(ln.sku, catalog[ln.sku].category, catalog[ln.sku].brand, catalog[ln.sku].tags,
                 catalog[ln.sku].price, d["base"], d["net"], ln.qty, catalog[ln.sku].attributes)
        for ln, d in zip(request.lines, data["lines"])
    )
    customer = request.customer
    values = {f"order.{k}": v for k, v in data["order"].items()}
    values.update({
        "customer.known": customer is not None,
        "customer.tier": customer.tier if customer else "",
        "customer.orders": customer.orders if customer else 0,
        "customer.tags": customer.tags if customer else frozenset(),
        "customer.referred": customer.referred if customer else False,
    })
    return OrderView(values, lines)
