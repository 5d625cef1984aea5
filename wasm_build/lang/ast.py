"""Expression nodes of the condition language (spec section 5).

Every node knows the span of source text it came from (`start`, `end`: 0-based offsets into
the condition's text) because the quote reports the failing node's own text, and errors point
at a column. The type checker returns the same node classes with `type` filled in and
untyped integer literals resolved (spec section 2), so one tree serves parsing, checking,
evaluation and, later, code generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Type(Enum):
    MONEY = "money"
    INT = "int"
    BOOL = "bool"
    STRING = "string"
    SET = "set"
    TIME = "time"
    PERCENT = "percent"
    UNTYPED = "integer literal"  # integer literals before context gives them a type


@dataclass(frozen=True)
class Node:
    start: int
    end: int


@dataclass(frozen=True)
class Const(Node):
    """A literal, or a folded expression of integer literals. Money is in minor units, time
    in Unix seconds, percent in ppm; an UNTYPED value is a plain integer."""

    type: Type
    value: object


@dataclass(frozen=True)
class Name(Node):
    name: str
    type: Type | None = None


@dataclass(frozen=True)
class Paren(Node):
    inner: Node


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Logic(Node):
    """`and` / `or` chains, flattened: `a and b and c` is one node with three operands."""

    op: str
    operands: tuple[Node, ...]
    op_columns: tuple[int, ...]


@dataclass(frozen=True)
class Compare(Node):
    op: str  # == != < <= > >=
    left: Node
    right: Node
    op_start: int
    operand_type: Type | None = None


@dataclass(frozen=True)
class Arith(Node):
    op: str  # + - *
    left: Node
    right: Node
    op_start: int
    type: Type | None = None


@dataclass(frozen=True)
class InList(Node):
    """`x in [..]` / `x not in [..]`: membership in a list of literals."""

    value: Node
    items: tuple[Const, ...]
    negated: bool
    op_start: int


@dataclass(frozen=True)
class InSet(Node):
    """`"s" in item.tags`: a string's membership in a set."""

    value: Node
    collection: Node
    negated: bool
    op_start: int


@dataclass(frozen=True)
class Aggregate(Node):
    """count / sum / any / all over every line of the order."""

    func: str
    value: Node | None  # sum's value
    condition: Node | None
    type: Type | None = None


def strip_parens(node: Node) -> Node:
    while isinstance(node, Paren):
        node = node.inner
    return node


def uses_name(node: Node) -> bool:
    """Whether a subtree reads the order, the customer, a line or an aggregate."""
    if isinstance(node, (Name, Aggregate)):
        return True
    if isinstance(node, Const):
        return False
    if isinstance(node, Paren):
        return uses_name(node.inner)
    if isinstance(node, Not):
        return uses_name(node.operand)
    if isinstance(node, Logic):
        return any(uses_name(o) for o in node.operands)
    if isinstance(node, (Compare, Arith)):
        return uses_name(node.left) or uses_name(node.right)
    if isinstance(node, InList):
        return uses_name(node.value)
    if isinstance(node, InSet):
        return uses_name(node.value) or uses_name(node.collection)
    raise TypeError(node)
