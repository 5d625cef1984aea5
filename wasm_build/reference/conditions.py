"""Evaluating checked expressions on an order, and explaining why a condition is false
(spec 5 and 7). Plain recursion over the tree: the yardstick, not the fast path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from poprules.literals import format_utc
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
    Type,
    strip_parens,
    uses_name,
)
from wasm_build.lang.model import Expression
from wasm_build.lang.typecheck import type_of


@dataclass(frozen=True)
class LineView:
    """What `item.*` reads on one line, at the moment a rule runs."""

    sku: str
    category: str
    brand: str
    tags: frozenset[str]
    price: int
    base: int
    net: int
    qty: int
    attributes: Mapping[str, Any]

    def get(self, name: str) -> Any:
        field = name.removeprefix("item.")
        if field in self.attributes:
            return self.attributes[field]
        return getattr(self, field)


@dataclass(frozen=True)
class OrderView:
    """What `order.*` and `customer.*` read, at the moment a rule runs."""

    values: Mapping[str, Any]
    lines: tuple[LineView, ...]


def evaluate(node: Node, order: OrderView, line: LineView | None = None) -> Any:
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Name):
        if node.name.startswith("item."):
            assert line is not None
            return line.get(node.name)
        return order.values[node.name]
    if isinstance(node, Paren):
        return evaluate(node.inner, order, line)
    if isinstance(node, Not):
        return not evaluate(node.operand, order, line)
    if isinstance(node, Logic):
        results = (evaluate(o, order, line) for o in node.operands)
        return all(results) if node.op == "and" else any(results)
    if isinstance(node, Arith):
        a, b = evaluate(node.left, order, line), evaluate(node.right, order, line)
        return a + b if node.op == "+" else a - b if node.op == "-" else a * b
    if isinstance(node, Compare):
        a, b = evaluate(node.left, order, line), evaluate(node.right, order, line)
        return {
            "==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
        }[node.op]
    if isinstance(node, InList):
        found = evaluate(node.value, order, line) in {item.value for item in node.items}
        return found != node.negated
    if isinstance(node, InSet):
        found = evaluate(node.value, order, line) in evaluate(node.collection, order, line)
        return bool(found != node.negated)
    if isinstance(node, Aggregate):
        return _aggregate(node, order)
    raise TypeError(node)


def _aggregate(node: Aggregate, order: OrderView) -> Any:
    lines = order.lines
    if node.condition is not None:
        lines = tuple(ln for ln in lines if evaluate(node.condition, order, ln))
    if node.func == "count":
        return len(lines)
    if node.func == "sum":
        assert node.value is not None
        return sum(evaluate(node.value, order, ln) for ln in lines)
    if node.func == "any":
        return bool(lines)
    return len(lines) == len(order.lines)  # all: every line satisfied the condition


def holds(expr: Expression | None, order: OrderView, line: LineView | None = None) -> bool:
    return True if expr is None else bool(evaluate(expr.node, order, line))


def report_value(value: Any, type_: Type) -> Any:
    """A value as the quote shows it: money in minor units, times as UTC strings, sets as
    sorted lists."""
    if type_ is Type.TIME:
        return format_utc(value)
    if type_ is Type.SET:
        return sorted(value)
    return value


def explain_false(expr: Expression, order: OrderView) -> tuple[str, Any]:
    """`failed` and `value` for a `when` that is false: walk down through `and` (first false
    operand, left to right) and parentheses; report the node where the walk stops."""
    node = strip_parens(expr.node)
    while isinstance(node, Logic) and node.op == "and":
        node = strip_parens(next(o for o in node.operands if not evaluate(o, order)))
    failed = expr.text[node.start : node.end]
    if isinstance(node, Compare):
        side = node.left if uses_name(node.left) or not uses_name(node.right) else node.right
    elif isinstance(node, InList):
        side = node.value
    elif isinstance(node, InSet):
        side = (node.value if uses_name(node.value) or not uses_name(node.collection)
                else node.collection)
    else:
        return failed, False
    return failed, report_value(evaluate(side, order), type_of(side))
