"""A rule program as a GoRules JDM decision graph, so `make bench` can time zen-engine on the
same carts as the compiled module and datalogic-py.

zen-engine (GoRules' Rust engine, `zen` in Python) evaluates JDM decision graphs: an input
node, decision tables and expression nodes written in its ZEN expression language, an output
node. It cannot run our language either, so this module translates exactly the subset
`bench/jsonlogic.py` translates, with the same generosity: what ZEN cannot say is left out,
not done in Python, so zen does *less* than the compiled module and a ratio against it
understates the module's lead.

Translated (a rule is counted as translated when all of this applies to it):

- rules whose reward is `discount` or `cashback` with a plain value: a percent (rounded per
  line in the program's mode; ZEN's numbers are decimals, so `net × ppm / 10⁶` is exact and
  `floor` rounds it), a fixed amount (clamped to the eligible net and spread over the
  eligible lines in proportion to their net, each line getting the floor of its share) or
  `{per_unit: X}` (`min(qty × X, net)`);
- its eligibility: `active` (`from`, `until`, `days`, `hours`, with the wrap-around rule of
  spec 3), `coupon` (the host passes the ids of the usable coupon sets), `when`, `to:
  referrer` and `items`. Conditions translate whole: every name, operator, `in` form and
  aggregate of spec 5 (`any` → `some`, `all` → `all`, which ZEN makes true on no lines as
  spec 5 does, `count`, `sum` over `map`; a line is a closure alias, `l1`, `l2`, ...);
- `cap.line`.

Skipped, and counted by reason: the rules `bench/jsonlogic.py` skips (tiered or keyed value,
`free_items`, `points`, `credit`), and a rule with a string literal ZEN cannot quote (its
strings have no escapes: one holding `'`, `"` and a backtick or `${` at once).

Not modelled even for translated rules: everything `bench/jsonlogic.py` lists (order of
evaluation inside a phase, `cap.order`, stacking, the instant clamp and lanes, the
largest-remainder hand-out, every part of the answer but the per-line figures).

The graph is one expression node per phase (a key per rule: its per-line figures, `[]` when
its gate is closed; a fixed amount's eligible total is a key of its own that the figures read
as `$.t<n>`), between the input and output nodes. Expression nodes rather than decision
tables because a table's cells are unary tests of one input field and its outputs are
values, while a rule here is a condition over the whole cart with aggregates over its lines
and a list of per-line figures; a `collect` table whose cells held these same expressions
would do the same work with a table's bookkeeping on top.

The host's work is the same as datalogic's, done by the same code (`DatalogicQuoter.data`),
so the two engines differ only in the evaluation. `check_conditions` evaluates every
translated gate and `items` test with zen and with the reference evaluator on every cart, and
`ZenQuoter.quote`'s figures can be compared with datalogic's, which translate the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import zen

from bench.jsonlogic import DatalogicQuoter, _line_sums, _plain_value, _reference_order
from poprules.literals import PPM
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
    Percent,
    Program,
    Rounding,
    Rule,
    Schedule,
    Value,
)
from wasm_build.reference.conditions import holds
from wasm_build.reference.schedule import is_active


class Untranslatable(ValueError):
    """A part of a rule ZEN cannot say; the rule is skipped and counted under `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- expressions --------------------------------------------------------------------------
#
# The context is the data document of bench/jsonlogic.py: {"order": {...}, "customer": {...},
# "coupons": [...], "clock": {...}, "lines": [{...}]}. Order-level names are plain paths at
# any depth; inside an aggregate the line is the alias `l<depth>`, so `item.x` is `l1.x`.


def _string(text: str) -> str:
    """A ZEN string literal: its strings have no escapes (a backslash is itself), so the
    text goes between a quote mark it does not contain, or in a template without `${`."""
    for quote in ("'", '"', "`"):
        if quote not in text and (quote != "`" or "${" not in text):
            return f"{quote}{text}{quote}"
    raise Untranslatable("string literal")


def condition(node: Node, depth: int = 0) -> str:
    """A checked expression in ZEN, evaluated `depth` aggregates deep (0 at order level)."""
    if isinstance(node, Const):
        value = node.value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value) if value >= 0 else f"({value})"
        assert isinstance(value, str), node
        return _string(value)
    if isinstance(node, Name):
        if node.name.startswith("item."):
            assert depth > 0, node
            return f"l{depth}.{node.name.removeprefix('item.')}"
        return node.name
    if isinstance(node, Paren):
        return condition(node.inner, depth)
    if isinstance(node, Not):
        return f"(not {condition(node.operand, depth)})"
    if isinstance(node, Logic):
        return "(" + f" {node.op} ".join(condition(o, depth) for o in node.operands) + ")"
    if isinstance(node, (Arith, Compare)):
        return f"({condition(node.left, depth)} {node.op} {condition(node.right, depth)})"
    if isinstance(node, InList):
        items = ", ".join(condition(i, depth) for i in node.items)
        found = f"({condition(node.value, depth)} in [{items}])"
        return f"(not {found})" if node.negated else found
    if isinstance(node, InSet):
        found = f"({condition(node.value, depth)} in {condition(node.collection, depth)})"
        return f"(not {found})" if node.negated else found
    if isinstance(node, Aggregate):
        return _aggregate(node, depth)
    raise TypeError(node)


def _aggregate(node: Aggregate, depth: int) -> str:
    line = f"lines as l{depth + 1}"
    test = condition(node.condition, depth + 1) if node.condition is not None else None
    if node.func == "any":
        return f"some({line}, {test or 'true'})"
    if node.func == "all":
        return f"all({line}, {test or 'true'})"
    if node.func == "count":
        return "len(lines)" if test is None else f"count({line}, {test})"
    assert node.func == "sum" and node.value is not None
    value = condition(node.value, depth + 1)
    return f"sum(map({line}, {value if test is None else f'{test} ? {value} : 0'}))"


def _rounded_percent(net: str, ppm: int, rounding: Rounding) -> str:
    """round(net × ppm / 1e6) in the program's mode, as `round_ratio` of spec 4.2."""
    product = f"{net} * {ppm}"
    if rounding is Rounding.DOWN:
        return f"floor({product} / {PPM})"
    if rounding is Rounding.HALF_UP:
        return f"floor(({product} * 2 + {PPM}) / {2 * PPM})"
    quotient = f"floor({product} / {PPM})"
    twice_rest = f"(({product}) % {PPM}) * 2"
    return (f"({quotient} + ({twice_rest} > {PPM} ? 1 : ({twice_rest} == {PPM} ? "
            f"{quotient} % 2 : 0)))")


def _schedule(schedule: Schedule) -> list[str]:
    """The tests of `active`, on the instant and the local wall clock the host provides."""
    tests: list[str] = []
    if schedule.start is not None:
        tests.append(f"order.now >= {schedule.start}")
    if schedule.until is not None:
        tests.append(f"order.now < {schedule.until}")
    days = sorted(schedule.days) if schedule.days is not None else None

    def on(day: str) -> list[str]:
        return [] if days is None else [f"(clock.{day} in [{', '.join(map(str, days))}])"]

    if schedule.hours is None:
        return tests + on("day")
    start, end = schedule.hours
    if start < end:
        return [*tests, f"{start} <= clock.time", f"clock.time < {end}", *on("day")]
    # A window that wraps midnight belongs to the day on which it starts.
    late = _all([f"clock.time >= {start}", *on("day")])
    early = _all([f"clock.time < {end}", *on("prev")])
    return [*tests, f"({late} or {early})"]


def _all(tests: Sequence[str]) -> str:
    return "true" if not tests else "(" + " and ".join(f"({t})" for t in tests) + ")"


def _gate(rule: Rule) -> list[str]:
    """Every order-level check of a rule: schedule, coupon, `when`, referrer."""
    tests = _schedule(rule.active) if rule.active is not None else []
    if rule.coupon is not None:
        tests.append(f"{_string(rule.coupon)} in coupons")
    if rule.when is not None:
        tests.append(condition(rule.when.node))
    if isinstance(rule.reward, Cashback) and rule.reward.to_referrer:
        tests.append("customer.referred")
    return tests


def _items(rule: Rule) -> str:
    return "true" if rule.items is None else condition(rule.items.node, 1)


def _capped(figure: str, rule: Rule) -> str:
    return figure if rule.cap.line is None else f"min([{figure}, {rule.cap.line}])"


def _expressions(key: str, rule: Rule, value: Value, rounding: Rounding) -> list[tuple[str, str]]:
    """The (key, expression) pairs of one rule: its per-line figures under `key`, `[]` when
    its gate is closed, after the eligible total a fixed amount needs."""
    gate = _all(_gate(rule))
    net, qty = "l1.net", "l1.qty"
    if isinstance(value, Amount):
        total = f"t{key}"
        eligible_total = f"sum(map(lines as l1, {_items(rule)} ? {net} : 0))"
        spread = f"floor(min([{value.minor}, $.{total}]) * {net} / $.{total})"
        figures = (f"map(lines as l1, ({_items(rule)}) and {net} > 0 ? "
                   f"{_capped(spread, rule)} : 0)")
        return [(total, f"{gate} ? {eligible_total} : 0"), (key, f"{gate} ? {figures} : []")]
    if isinstance(value, Percent):
        raw = _rounded_percent(net, value.ppm, rounding)
    else:
        raw = f"min([{qty} * {value.minor}, {net}])"
    figures = f"map(lines as l1, {_items(rule)} ? {_capped(raw, rule)} : 0)"
    return [(key, figures if gate == "true" else f"{gate} ? {figures} : []")]


def graph(expressions: Sequence[tuple[str, str]]) -> str:
    """A JDM decision: input → one expression node → output."""
    nodes = [
        {"id": "input", "type": "inputNode", "name": "cart", "content": {}},
        {"id": "rules", "type": "expressionNode", "name": "rules", "content": {
            "expressions": [{"id": f"e{n}", "key": key, "value": value}
                            for n, (key, value) in enumerate(expressions)]}},
        {"id": "output", "type": "outputNode", "name": "figures", "content": {}},
    ]
    edges = [{"id": "in", "type": "edge", "sourceId": "input", "targetId": "rules"},
             {"id": "out", "type": "edge", "sourceId": "rules", "targetId": "output"}]
    return json.dumps({"nodes": nodes, "edges": edges})


# --- a program ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Translation:
    """The translated rules of a program in evaluation order, and per phase the JDM graph
    whose output holds each rule's per-line figures under `r<n>` (n: its place in `phaseN`)."""

    phase1: tuple[Rule, ...]
    phase2: tuple[Rule, ...]
    graph1: str
    graph2: str
    skipped: dict[str, int]  # reason → rules


def translate(program: Program) -> Translation:
    phases: dict[int, list[Rule]] = {1: [], 2: []}
    expressions: dict[int, list[tuple[str, str]]] = {1: [], 2: []}
    skipped: dict[str, int] = {}
    for rule in program.evaluation_order:
        value, reason = _plain_value(rule)
        if value is not None:
            try:
                made = _expressions(f"r{len(phases[rule.phase])}", rule, value, program.rounding)
            except Untranslatable as error:
                reason = error.reason
            else:
                phases[rule.phase].append(rule)
                expressions[rule.phase] += made
                continue
        assert reason is not None
        skipped[reason] = skipped.get(reason, 0) + 1
    return Translation(tuple(phases[1]), tuple(phases[2]), graph(expressions[1]),
                       graph(expressions[2]), dict(sorted(skipped.items())))


# --- evaluating -----------------------------------------------------------------------------


class ZenQuoter:
    """A request → the translated rules' per-line figures, with zen-engine doing the rules.

    Both phases are created once as decisions of one engine; a cart is the data document
    (built by `DatalogicQuoter.data`, the host's work for datalogic too), two
    `ZenDecision.evaluate` calls with phase 1's discounts applied between them, and summing the
    figures, exactly as `DatalogicQuoter.quote`.
    """

    def __init__(self, program: Program, host: DatalogicQuoter) -> None:
        self.program = program
        self.host = host
        self.translation = translate(program)
        engine = zen.ZenEngine()
        self._phase1 = engine.create_decision(self.translation.graph1)
        self._phase2 = engine.create_decision(self.translation.graph2)
        self._keys1 = [f"r{n}" for n in range(len(self.translation.phase1))]
        self._keys2 = [f"r{n}" for n in range(len(self.translation.phase2))]

    def quote(self, request: Request) -> dict[str, Any]:
        data = self.host.data(request)
        lines = data["lines"]
        result1 = self._phase1.evaluate(data)["result"]
        phase1: list[list[int]] = [result1[key] for key in self._keys1]
        for line, discount in zip(lines, _line_sums(phase1, len(lines))):
            line["net"] = max(line["base"] - discount, 0)
        data["order"]["net"] = sum(ln["net"] for ln in lines)
        result2 = self._phase2.evaluate(data)["result"]
        phase2: list[list[int]] = [result2[key] for key in self._keys2]
        cashback = _line_sums(phase2, len(lines))
        rules = {rule.id: sum(figures) for rule, figures in
                 zip(self.translation.phase1 + self.translation.phase2, phase1 + phase2)}
        return {
            "lines": [{"sku": ln["sku"], "qty": ln["qty"], "base": ln["base"],
                       "discount": ln["base"] - ln["net"], "net": ln["net"], "cashback": c}
                      for ln, c in zip(lines, cashback)],
            "rules": rules,
        }


# --- checking the translation ---------------------------------------------------------------


def check_conditions(quoter: ZenQuoter, requests: Iterable[Request]) -> tuple[int, int]:
    """Evaluate every translated rule's gate and `items` with zen and with the reference
    evaluator's own functions, on each cart as it comes in; returns (checks made,
    disagreements). A timing of a wrong translation would be meaningless."""
    program = quoter.program
    rules = quoter.translation.phase1 + quoter.translation.phase2
    probe = zen.ZenEngine().create_decision(graph([
        expression for n, rule in enumerate(rules) for expression in (
            (f"g{n}", _all(_gate(rule))), (f"i{n}", f"map(lines as l1, {_items(rule)})"))]))
    checks = wrong = 0
    for request in requests:
        data = quoter.host.data(request)
        result = probe.evaluate(data)["result"]
        order = _reference_order(program, request, data)
        usable = set(data["coupons"])
        for n, rule in enumerate(rules):
            expected_gate = (
                is_active(rule.active, request.at, program.zone)
                and (rule.coupon is None or rule.coupon in usable)
                and holds(rule.when, order)
                and (not isinstance(rule.reward, Cashback) or not rule.reward.to_referrer
                     or bool(order.values["customer.referred"]))
            )
            expected_items = [holds(rule.items, order, line) for line in order.lines]
            checks += 1 + len(expected_items)
            wrong += (bool(result[f"g{n}"]) != expected_gate) + sum(
                bool(got) != want
                for got, want in zip(result[f"i{n}"], expected_items, strict=True))
    return checks, wrong
