"""Name resolution and type checking of conditions (spec sections 2 and 5).

Returns the tree with every name's type filled in and integer literals given the type their
context needs: next to money they are major units, next to an int they are ints, in
`money * 3` a count; an expression of integer literals only is folded first, then scaled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from enum import Enum

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
)
from wasm_build.lang.syntax import ExprError

ORDER_NAMES: Mapping[str, Type] = {
    "order.subtotal": Type.MONEY,
    "order.net": Type.MONEY,
    "order.units": Type.INT,
    "order.lines": Type.INT,
    "order.channel": Type.STRING,
    "order.fulfillment": Type.STRING,
    "order.pop": Type.STRING,
    "order.now": Type.TIME,
    "customer.known": Type.BOOL,
    "customer.tier": Type.STRING,
    "customer.orders": Type.INT,
    "customer.tags": Type.SET,
    "customer.referred": Type.BOOL,
}

ITEM_NAMES: Mapping[str, Type] = {
    "item.sku": Type.STRING,
    "item.category": Type.STRING,
    "item.brand": Type.STRING,
    "item.tags": Type.SET,
    "item.price": Type.MONEY,
    "item.base": Type.MONEY,
    "item.net": Type.MONEY,
    "item.qty": Type.INT,
}

_ORDERED = frozenset({Type.MONEY, Type.INT, Type.TIME, Type.PERCENT})


class Scope(Enum):
    ORDER = "order"  # when, basis, by: item names only inside an aggregate
    ITEM = "item"  # items, toward: item names, no aggregates


def type_of(node: Node) -> Type:
    if isinstance(node, Const):
        return node.type
    if isinstance(node, (Name, Arith, Aggregate)):
        assert node.type is not None
        return node.type
    if isinstance(node, Paren):
        return type_of(node.inner)
    return Type.BOOL


class Checker:
    """Checks expressions against the names a program can use (its catalog attributes)."""

    def __init__(self, attributes: Mapping[str, Type], places: int) -> None:
        self.item_names = {**ITEM_NAMES, **{f"item.{a}": t for a, t in attributes.items()}}
        self.scale = 10**places

    def check(self, node: Node, scope: Scope, expected: Type) -> Node:
        typed = self.infer(node, scope, in_aggregate=False)
        actual = type_of(typed)
        if actual is Type.UNTYPED and expected in (Type.MONEY, Type.INT):
            return self.coerce(typed, expected)
        if actual is not expected:
            raise ExprError(1, f"the expression is {actual.value}, it must be {expected.value}")
        return typed

    def coerce(self, node: Node, target: Type) -> Node:
        """Give an integer-literal subtree its type; money literals are major units."""
        if type_of(node) is not Type.UNTYPED:
            return node
        assert isinstance(node, Const) and isinstance(node.value, int)
        value = node.value * self.scale if target is Type.MONEY else node.value
        return Const(node.start, node.end, target, value)

    def infer(self, node: Node, scope: Scope, in_aggregate: bool) -> Node:
        if isinstance(node, Const):
            return node
        if isinstance(node, Name):
            return replace(node, type=self.resolve(node, scope, in_aggregate))
        if isinstance(node, Paren):
            inner = self.infer(node.inner, scope, in_aggregate)
            if type_of(inner) is Type.UNTYPED:
                assert isinstance(inner, Const)
                return Const(node.start, node.end, Type.UNTYPED, inner.value)
            return replace(node, inner=inner)
        if isinstance(node, Not):
            operand = self.infer(node.operand, scope, in_aggregate)
            self.require_bool(operand, node.start + 1, "not")
            return replace(node, operand=operand)
        if isinstance(node, Logic):
            operands = tuple(self.infer(o, scope, in_aggregate) for o in node.operands)
            for i, operand in enumerate(operands):
                column = node.op_columns[max(i - 1, 0)]
                self.require_bool(operand, column, node.op)
            return replace(node, operands=operands)
        if isinstance(node, Arith):
            return self.arith(node, scope, in_aggregate)
        if isinstance(node, Compare):
            return self.compare(node, scope, in_aggregate)
        if isinstance(node, InList):
            return self.in_list(node, scope, in_aggregate)
        if isinstance(node, InSet):
            value = self.infer(node.value, scope, in_aggregate)
            collection = self.infer(node.collection, scope, in_aggregate)
            if type_of(value) is not Type.STRING or type_of(collection) is not Type.SET:
                raise ExprError(
                    node.op_start + 1,
                    f"in needs a list [..] or a string and a set, not "
                    f"{type_of(value).value} and {type_of(collection).value}",
                )
            return replace(node, value=value, collection=collection)
        if isinstance(node, Aggregate):
            return self.aggregate(node, scope, in_aggregate)
        raise TypeError(node)

    def resolve(self, node: Name, scope: Scope, in_aggregate: bool) -> Type:
        if node.name in ORDER_NAMES:
            return ORDER_NAMES[node.name]
        if node.name in self.item_names:
            if scope is Scope.ORDER and not in_aggregate:
                raise ExprError(
                    node.start + 1,
                    f"{node.name} is a line's value: use it in items, or inside an aggregate "
                    "such as any(...) or sum(...)",
                )
            return self.item_names[node.name]
        hint = " (item.title is shown to shoppers, not a condition name)" if (
            node.name == "item.title"
        ) else ""
        raise ExprError(node.start + 1, f"unknown name {node.name}{hint}")

    @staticmethod
    def require_bool(node: Node, column: int, op: str) -> None:
        if type_of(node) is not Type.BOOL:
            raise ExprError(column, f"{op} needs bool operands, not {type_of(node).value}")

    def unify(self, left: Node, right: Node, column: int, op: str) -> tuple[Node, Node, Type]:
        lt, rt = type_of(left), type_of(right)
        if lt is Type.UNTYPED and rt is Type.UNTYPED:
            return left, right, Type.UNTYPED
        if lt is Type.UNTYPED and rt in (Type.MONEY, Type.INT):
            return self.coerce(left, rt), right, rt
        if rt is Type.UNTYPED and lt in (Type.MONEY, Type.INT):
            return left, self.coerce(right, lt), lt
        if lt is rt:
            return left, right, lt
        raise ExprError(column, f"{op} cannot combine {lt.value} and {rt.value}")

    def arith(self, node: Arith, scope: Scope, in_aggregate: bool) -> Node:
        left = self.infer(node.left, scope, in_aggregate)
        right = self.infer(node.right, scope, in_aggregate)
        lt, rt = type_of(left), type_of(right)
        column = node.op_start + 1
        if lt is Type.UNTYPED and rt is Type.UNTYPED:
            assert isinstance(left, Const) and isinstance(right, Const)
            a, b = left.value, right.value
            assert isinstance(a, int) and isinstance(b, int)
            value = a + b if node.op == "+" else a - b if node.op == "-" else a * b
            return Const(node.start, node.end, Type.UNTYPED, value)
        if node.op == "*":
            # money * 3: the literal is a count, never money
            left = self.coerce(left, Type.INT)
            right = self.coerce(right, Type.INT)
            lt, rt = type_of(left), type_of(right)
            if (lt, rt) == (Type.INT, Type.INT):
                return replace(node, left=left, right=right, type=Type.INT)
            if (lt, rt) in ((Type.MONEY, Type.INT), (Type.INT, Type.MONEY)):
                return replace(node, left=left, right=right, type=Type.MONEY)
            raise ExprError(column, f"* cannot multiply {lt.value} by {rt.value}")
        left, right, result = self.unify(left, right, column, node.op)
        if result not in (Type.MONEY, Type.INT):
            raise ExprError(column, f"{node.op} works on money or int, not {result.value}")
        return replace(node, left=left, right=right, type=result)

    def compare(self, node: Compare, scope: Scope, in_aggregate: bool) -> Node:
        left = self.infer(node.left, scope, in_aggregate)
        right = self.infer(node.right, scope, in_aggregate)
        column = node.op_start + 1
        left, right, operand = self.unify(left, right, column, node.op)
        if operand is Type.UNTYPED:
            left, right, operand = self.coerce(left, Type.INT), self.coerce(right, Type.INT), Type.INT
        if operand is Type.SET:
            raise ExprError(column, f"{node.op} cannot compare sets: use \"x\" in a set")
        if node.op not in ("==", "!=") and operand not in _ORDERED:
            raise ExprError(column, f"{node.op} cannot order {operand.value} values")
        return replace(node, left=left, right=right, operand_type=operand)

    def in_list(self, node: InList, scope: Scope, in_aggregate: bool) -> Node:
        value = self.coerce(self.infer(node.value, scope, in_aggregate), Type.INT)
        want = type_of(value)
        column = node.op_start + 1
        if want is Type.SET:
            raise ExprError(column, "a set cannot be in a list: use \"x\" in a set")
        items: list[Const] = []
        for item in node.items:
            if item.type is Type.UNTYPED and want in (Type.MONEY, Type.INT):
                coerced = self.coerce(item, want)
                assert isinstance(coerced, Const)
                item = coerced
            if item.type is not want:
                raise ExprError(column, f"the list must hold {want.value} literals, not {item.type.value}")
            items.append(item)
        return replace(node, value=value, items=tuple(items))

    def aggregate(self, node: Aggregate, scope: Scope, in_aggregate: bool) -> Node:
        column = node.start + 1
        if scope is Scope.ITEM:
            raise ExprError(column, f"{node.func}(...) is an order value: it cannot be used per line")
        if in_aggregate:
            raise ExprError(column, f"{node.func}(...) cannot be nested in another aggregate")
        condition = None
        if node.condition is not None:
            condition = self.infer(node.condition, scope, in_aggregate=True)
            self.require_bool(condition, column, node.func)
        if node.func != "sum":
            result = Type.INT if node.func == "count" else Type.BOOL
            return replace(node, condition=condition, type=result)
        assert node.value is not None
        value = self.coerce(self.infer(node.value, scope, in_aggregate=True), Type.INT)
        if type_of(value) not in (Type.MONEY, Type.INT):
            raise ExprError(column, f"sum needs a money or int value, not {type_of(value).value}")
        return replace(node, value=value, condition=condition, type=type_of(value))
