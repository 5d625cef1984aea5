"""Static facts about checked expressions that every evaluator needs the same way: the
`and`-chain a nudge looks at, and what counts as a spend (spec section 7, Nudges)."""

from __future__ import annotations

from wasm_build.lang.ast import Aggregate, Compare, Logic, Name, Node, Type, strip_parens, uses_name
from wasm_build.lang.typecheck import type_of


def and_chain(node: Node) -> list[Node]:
    """The operands of a `when` read as one `and`-chain; parentheses are transparent."""
    node = strip_parens(node)
    if isinstance(node, Logic) and node.op == "and":
        return [leaf for operand in node.operands for leaf in and_chain(operand)]
    return [node]


def is_spend(node: Node) -> bool:
    """`order.subtotal`, `order.net` or a money `sum(...)`."""
    node = strip_parens(node)
    if isinstance(node, Name):
        return node.name in ("order.subtotal", "order.net")
    return isinstance(node, Aggregate) and node.func == "sum" and node.type is Type.MONEY


def spend_threshold(node: Node) -> tuple[Node, Node, bool] | None:
    """For `S >= X`, `S > X`, `X <= S`, `X < S` with S a spend and X literals only: (S, X,
    strict). Strict comparisons need one minor unit more than the threshold."""
    if not isinstance(node, Compare):
        return None
    left, right = strip_parens(node.left), strip_parens(node.right)
    if node.op in (">=", ">"):
        spend, threshold = left, right
    elif node.op in ("<=", "<"):
        spend, threshold = right, left
    else:
        return None
    if not is_spend(spend) or uses_name(threshold) or type_of(threshold) is not Type.MONEY:
        return None
    return spend, threshold, node.op in (">", "<")
