"""Name resolution and typing of conditions (spec 2 and 5), on the parser's trees."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

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
from wasm_build.lang.syntax import ExprError, LiteralContext, parse
from wasm_build.lang.typecheck import ITEM_NAMES, ORDER_NAMES, Checker, Scope, type_of

BERLIN = ZoneInfo("Europe/Berlin")
ATTRIBUTES = {"on_sale": Type.BOOL, "weight_g": Type.INT, "cost": Type.MONEY,
              "origin": Type.STRING}


def check(text: str, scope: Scope = Scope.ORDER, expected: Type = Type.BOOL,
          places: int = 2) -> Node:
    checker = Checker(ATTRIBUTES, places)
    return checker.check(parse(text, LiteralContext(places, BERLIN)), scope, expected)


def error(text: str, scope: Scope = Scope.ORDER, expected: Type = Type.BOOL,
          places: int = 2) -> ExprError:
    with pytest.raises(ExprError) as caught:
        check(text, scope, expected, places)
    err = caught.value
    assert 1 <= err.column <= len(text) + 1
    return err


def compare(node: Node) -> Compare:
    assert isinstance(node, Compare)
    return node


# --- integer literals take their context's type ------------------------------------------------


def test_next_to_money_an_integer_is_major_units() -> None:
    node = compare(check("order.subtotal >= 50"))
    assert node.right == Const(18, 20, Type.MONEY, 5000)
    assert node.operand_type is Type.MONEY


def test_integer_expressions_are_folded_then_scaled() -> None:
    node = compare(check("order.subtotal >= 5 * 10"))
    assert node.right == Const(18, 24, Type.MONEY, 5000)
    node = compare(check("(2 + 3) * (4 - 1) <= order.net"))
    assert node.left == Const(0, 17, Type.MONEY, 1500)


def test_integer_expressions_may_go_below_zero_once_folded() -> None:
    # There is no unary minus, but `1 - 3` is the int -2.
    node = compare(check("order.units > 1 - 3"))
    assert node.right == Const(14, 19, Type.INT, -2)


def test_money_times_a_literal_is_a_count() -> None:
    node = compare(check("item.price * 3 > 10", Scope.ITEM))
    assert isinstance(node.left, Arith) and node.left.type is Type.MONEY
    assert node.left.right == Const(13, 14, Type.INT, 3)
    assert node.right == Const(17, 19, Type.MONEY, 1000)
    node = compare(check("3 * item.price > 10", Scope.ITEM))
    assert isinstance(node.left, Arith) and node.left.left == Const(0, 1, Type.INT, 3)
    node = compare(check("item.price * (1 + 2) > 10", Scope.ITEM))
    assert isinstance(node.left, Arith) and node.left.right == Const(13, 20, Type.INT, 3)


def test_money_times_an_int_name_is_money() -> None:
    node = compare(check("item.price * item.qty == item.base", Scope.ITEM))
    assert isinstance(node.left, Arith) and node.left.type is Type.MONEY
    assert node.operand_type is Type.MONEY


def test_next_to_an_int_an_integer_is_an_int() -> None:
    node = compare(check("order.units > 2"))
    assert node.right == Const(14, 15, Type.INT, 2)
    assert node.operand_type is Type.INT


def test_money_addition_scales_literals() -> None:
    node = compare(check("order.subtotal - 5 > 0"))
    assert isinstance(node.left, Arith) and node.left.right == Const(17, 18, Type.MONEY, 500)
    assert node.right == Const(21, 22, Type.MONEY, 0)


def test_literal_only_comparison_is_int() -> None:
    node = compare(check("1 + 1 == 2"))
    assert node.operand_type is Type.INT
    assert (node.left, node.right) == (Const(0, 5, Type.INT, 2), Const(9, 10, Type.INT, 2))


@pytest.mark.parametrize(("places", "minor"), [(0, 50), (2, 5000), (3, 50_000), (4, 500_000)])
def test_scaling_follows_the_currency(places: int, minor: int) -> None:
    node = compare(check("order.subtotal >= 50", places=places))
    assert node.right == Const(18, 20, Type.MONEY, minor)


def test_decimal_literals_in_three_decimal_currency() -> None:
    node = compare(check("order.subtotal >= 1.005", places=3))
    assert node.right == Const(18, 23, Type.MONEY, 1005)


def test_money_list_mixes_integer_and_decimal_literals() -> None:
    node = check("order.subtotal in [5, 9.99]")
    assert isinstance(node, InList)
    assert node.items == (Const(19, 20, Type.MONEY, 500), Const(22, 26, Type.MONEY, 999))
    node = check("item.cost not in [0, 1]", Scope.ITEM, places=0)
    assert isinstance(node, InList) and [c.value for c in node.items] == [0, 1]


def test_int_list() -> None:
    node = check("order.units in [1, 2]")
    assert isinstance(node, InList)
    assert [(c.type, c.value) for c in node.items] == [(Type.INT, 1), (Type.INT, 2)]


def test_literal_value_in_list_is_an_int() -> None:
    node = check("1 in [1, 2]")
    assert isinstance(node, InList) and node.value == Const(0, 1, Type.INT, 1)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('order.channel in ["web", ""]', Type.STRING),
        ("order.now in [2026-07-01T09:00]", Type.TIME),
        ("customer.known not in [true]", Type.BOOL),
        ("10% in [10%, 5%]", Type.PERCENT),
        ("order.channel in []", Type.STRING),
    ],
)
def test_lists_of_other_types(text: str, kind: Type) -> None:
    node = check(text)
    assert isinstance(node, InList) and all(c.type is kind for c in node.items)


def test_sum_of_a_literal() -> None:
    node = compare(check("sum(1, item.on_sale) >= 2"))
    assert isinstance(node.left, Aggregate) and node.left.type is Type.INT
    assert node.left.value == Const(4, 5, Type.INT, 1)


def test_basis_and_by_expressions() -> None:
    assert check("5", expected=Type.MONEY) == Const(0, 1, Type.MONEY, 500)
    assert check("(2 * 3)", expected=Type.MONEY) == Const(0, 7, Type.MONEY, 600)
    node = check("order.subtotal - order.net", expected=Type.MONEY)
    assert isinstance(node, Arith) and node.type is Type.MONEY
    node = check("customer.tier", expected=Type.STRING)
    assert node == Name(0, 13, "customer.tier", Type.STRING)
    assert check('"gold"', expected=Type.STRING) == Const(0, 6, Type.STRING, "gold")


def test_whole_expression_of_the_wrong_type() -> None:
    assert error("order.units").column == 1
    assert error("5").column == 1
    assert error("order.units", expected=Type.MONEY).column == 1
    assert error("5", expected=Type.STRING).column == 1
    assert error("customer.known", expected=Type.MONEY).column == 1
    assert error("(order.units > 1)", expected=Type.STRING).column == 1


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"), [(n, k) for n, k in ORDER_NAMES.items() if k is not Type.SET])
def test_order_names_have_their_types(name: str, kind: Type) -> None:
    assert check(name, expected=kind) == Name(0, len(name), name, kind)


def test_order_sets() -> None:
    node = check('"vip" in customer.tags')
    assert isinstance(node, InSet) and type_of(node.collection) is Type.SET


def test_every_item_name_in_item_scope() -> None:
    for name, kind in {**ITEM_NAMES, **{f"item.{a}": t for a, t in ATTRIBUTES.items()}}.items():
        if kind is Type.BOOL:
            assert check(name, Scope.ITEM) == Name(0, len(name), name, kind)
        elif kind is Type.SET:
            node = check(f'"x" in {name}', Scope.ITEM)
            assert isinstance(node, InSet) and node.collection == Name(7, 7 + len(name), name,
                                                                        kind)
        else:
            node = compare(check(f"{name} == {name}", Scope.ITEM))
            assert node.operand_type is kind


def test_order_names_in_item_scope() -> None:
    node = check("item.qty > 1 and customer.known", Scope.ITEM)
    assert isinstance(node, Logic)


def test_item_names_inside_an_aggregate() -> None:
    node = check("any(item.on_sale and item.weight_g > 100) and sum(item.cost) > 0")
    assert isinstance(node, Logic)
    agg = node.operands[0]
    assert isinstance(agg, Aggregate) and agg.type is Type.BOOL
    total = compare(node.operands[1]).left
    assert isinstance(total, Aggregate) and total.type is Type.MONEY


@pytest.mark.parametrize(
    ("text", "kind"),
    [("count(item.on_sale)", Type.INT), ("sum(item.qty)", Type.INT),
     ("sum(item.net, item.qty > 1)", Type.MONEY), ("sum(item.cost)", Type.MONEY),
     ("sum(item.weight_g * item.qty)", Type.INT), ("sum(item.price * 2)", Type.MONEY)],
)
def test_aggregate_types(text: str, kind: Type) -> None:
    node = check(text, expected=kind)
    assert isinstance(node, Aggregate) and node.type is kind


def test_aggregates_range_over_order_names_too() -> None:
    node = check("all(order.units > 0)")
    assert isinstance(node, Aggregate) and node.type is Type.BOOL


@pytest.mark.parametrize(
    ("text", "scope", "column"),
    [
        ("order.fulfilment == \"x\"", Scope.ORDER, 1),
        ("item.title == \"x\"", Scope.ITEM, 1),
        ("item.sku == \"x\"", Scope.ORDER, 1),
        ("order.units > 1 and item.qty > 1", Scope.ORDER, 21),
        ("any(item.qty > 1) and item.on_sale", Scope.ORDER, 23),
        ("any(item.qty > 1)", Scope.ITEM, 1),
        ("item.qty > count(true)", Scope.ITEM, 12),
        ("any(all(item.on_sale))", Scope.ORDER, 5),
        ("item.colour", Scope.ITEM, 1),
        ("customer.referred and customer.refered", Scope.ORDER, 23),
    ],
)
def test_name_errors(text: str, scope: Scope, column: int) -> None:
    assert error(text, scope).column == column


# --- type errors point at the operator -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("order.subtotal > 10%", 16),
        ("10% > 5", 5),
        ("10% >= order.units", 5),
        ("customer.tier == 5", 15),
        ("order.units == 5.00", 13),
        ("order.now > 5", 11),
        ("order.now + 1 > order.now", 11),
        ("order.units + order.subtotal > 1", 13),
        ("order.subtotal * order.net > 1", 16),
        ("10% + 5% > 1%", 5),
        ("10% * 2 > 1%", 5),
        ('customer.tier + "x" == "y"', 15),
        ("customer.known > customer.referred", 16),
        ('customer.tier < "b"', 15),
        ("customer.tags == customer.tags", 15),
        ("customer.tags != customer.tags", 15),
        ('"x" in order.channel', 5),
        ("5 in customer.tags", 3),
        ("customer.tags in []", 15),
        ("order.units in [1, 2.50]", 13),
        ('order.units in ["1"]', 13),
        ("order.subtotal in [1%]", 16),
        ("order.now in [1]", 11),
        ("not order.units", 1),
        ("customer.known and order.units", 16),
        ("order.units or customer.known", 13),
        ("customer.known and customer.referred or 5", 38),
        ("sum(item.tags) > 1", 1),
        ("sum(item.on_sale) > 1", 1),
        ("any(item.qty)", 1),
        ("count(item.cost) > 1", 1),
        ("count(item.on_sale) > 1.00", 21),
        ("sum(item.qty) > 1.00", 15),
    ],
)
def test_type_errors(text: str, column: int) -> None:
    assert error(text).column == column


def test_true_is_a_condition() -> None:
    assert check("true") == Const(0, 4, Type.BOOL, True)
    node = check("not (customer.known == false)")
    assert isinstance(node, Not) and isinstance(node.operand, Paren)


def test_type_of_parentheses_is_the_inner_type() -> None:
    node = compare(check("(order.subtotal) >= (20)"))
    assert isinstance(node.left, Paren) and type_of(node.left) is Type.MONEY
    assert node.right == Const(20, 24, Type.MONEY, 2000)


def test_checked_tree_keeps_spans() -> None:
    text = "order.subtotal >= 20 and order.units > 1"
    node = check(text)
    assert isinstance(node, Logic)
    assert [(o.start, o.end) for o in node.operands] == [(0, 20), (25, 40)]
