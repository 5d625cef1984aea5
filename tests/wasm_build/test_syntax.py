"""The condition parser (spec 5): precedence, literals read exactly, and source spans."""

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
from wasm_build.lang.syntax import MAX_DEPTH, ExprError, LiteralContext, parse, tokenize

BERLIN = ZoneInfo("Europe/Berlin")
EUR = LiteralContext(2, BERLIN)


def p(text: str, ctx: LiteralContext = EUR) -> Node:
    return parse(text, ctx)


def error(text: str, ctx: LiteralContext = EUR) -> ExprError:
    with pytest.raises(ExprError) as caught:
        parse(text, ctx)
    return caught.value


def name(start: int, text: str) -> Name:
    return Name(start, start + len(text), text)


def text_of(node: Node, source: str) -> str:
    return source[node.start:node.end]


# --- precedence --------------------------------------------------------------------------------


def test_not_binds_looser_than_comparison() -> None:
    assert p("not a.b == c.d") == Not(
        0, 14, Compare(4, 14, "==", name(4, "a.b"), name(11, "c.d"), 8))


def test_and_binds_tighter_than_or() -> None:
    assert p("a.b or c.d and e.f") == Logic(
        0, 18, "or",
        (name(0, "a.b"), Logic(7, 18, "and", (name(7, "c.d"), name(15, "e.f")), (12,))),
        (5,))
    assert p("a.b and c.d or e.f") == Logic(
        0, 18, "or",
        (Logic(0, 11, "and", (name(0, "a.b"), name(8, "c.d")), (5,)), name(15, "e.f")),
        (13,))


def test_not_binds_tighter_than_and() -> None:
    assert p("not a.b and c.d") == Logic(
        0, 15, "and", (Not(0, 7, name(4, "a.b")), name(12, "c.d")), (9,))


def test_not_nests() -> None:
    assert p("not not a.b") == Not(0, 11, Not(4, 11, name(8, "a.b")))


def test_chains_are_flattened() -> None:
    node = p("a.b and c.d and e.f")
    assert isinstance(node, Logic) and node.op == "and"
    assert node.operands == (name(0, "a.b"), name(8, "c.d"), name(16, "e.f"))
    assert node.op_columns == (5, 13)  # 1-based columns of each `and`


def test_parentheses_group_and_stay_in_the_tree() -> None:
    node = p("(a.b or c.d) and e.f")
    assert isinstance(node, Logic) and node.op == "and"
    paren = node.operands[0]
    assert isinstance(paren, Paren) and (paren.start, paren.end) == (0, 12)
    assert isinstance(paren.inner, Logic) and paren.inner.op == "or"


def test_multiplication_binds_tighter_than_addition() -> None:
    node = p("a.b + c.d * 3 - 2")
    assert isinstance(node, Arith) and node.op == "-"
    assert isinstance(node.left, Arith) and node.left.op == "+"
    assert isinstance(node.left.right, Arith) and node.left.right.op == "*"
    assert (node.op_start, node.left.op_start, node.left.right.op_start) == (14, 4, 10)


def test_arithmetic_is_left_associative() -> None:
    node = p("a.b - c.d - e.f")
    assert isinstance(node, Arith) and isinstance(node.left, Arith)
    assert (node.left.left, node.left.right, node.right) == (
        name(0, "a.b"), name(6, "c.d"), name(12, "e.f"))


def test_arithmetic_binds_tighter_than_comparison() -> None:
    node = p("a.b + 1 >= c.d * 2")
    assert isinstance(node, Compare) and node.op == ">="
    assert isinstance(node.left, Arith) and isinstance(node.right, Arith)


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_every_comparison_operator(op: str) -> None:
    node = p(f"a.b {op} c.d")
    assert isinstance(node, Compare) and node.op == op and node.op_start == 4


def test_in_forms() -> None:
    assert p('"x" in a.b') == InSet(
        0, 10, Const(0, 3, Type.STRING, "x"), name(7, "a.b"), False, 4)
    assert p('"x" not in a.b') == InSet(
        0, 14, Const(0, 3, Type.STRING, "x"), name(11, "a.b"), True, 8)
    node = p("a.b not in [1, 2.50]")
    assert node == InList(0, 20, name(0, "a.b"), (
        Const(12, 13, Type.UNTYPED, 1), Const(15, 19, Type.MONEY, 250)), True, 8)
    assert p("a.b in []") == InList(0, 9, name(0, "a.b"), (), False, 4)


def test_not_before_in_comparison() -> None:
    # `not x in [..]` is `not (x in [..])`; `x not in [..]` is the negated membership.
    node = p("not a.b in [1]")
    assert isinstance(node, Not) and isinstance(node.operand, InList)
    assert not node.operand.negated


def test_aggregates() -> None:
    source = 'sum(item.qty, "x" in item.tags) > 1'
    node = p(source)
    assert isinstance(node, Compare)
    agg = node.left
    assert isinstance(agg, Aggregate) and agg.func == "sum"
    assert (agg.start, agg.end) == (0, 31)
    assert agg.value == name(4, "item.qty")
    assert isinstance(agg.condition, InSet)
    for func in ("count", "any", "all"):
        node = p(f"{func}(item.qty > 1)")
        assert isinstance(node, Aggregate) and node.func == func
        assert node.value is None and isinstance(node.condition, Compare)
    node = p("sum(item.net)")
    assert isinstance(node, Aggregate) and node.condition is None


def test_keywords_inside_names_are_names() -> None:
    assert p("item.count") == name(0, "item.count")
    assert p("item.in and item.not_really") == Logic(
        0, 27, "and", (name(0, "item.in"), name(12, "item.not_really")), (9,))


def test_whitespace_of_every_kind() -> None:
    assert p("a.b\t==\r\nc.d") == Compare(0, 11, "==", name(0, "a.b"), name(8, "c.d"), 4)


# --- literals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("places", "source", "value"),
    [
        (2, "19.90", 1990),
        (2, "1.000", 100),
        (0, "100.00", 100),
        (0, "7.0", 7),
        (3, "1.005", 1005),
        (3, "2.5", 2500),
        (4, "0.0001", 1),
    ],
)
def test_money_literals_in_the_currency(places: int, source: str, value: int) -> None:
    assert p(source, LiteralContext(places, BERLIN)) == Const(0, len(source), Type.MONEY, value)


@pytest.mark.parametrize(("places", "source"), [(2, "1.005"), (0, "100.5"), (3, "0.0001")])
def test_money_literals_are_never_rounded(places: int, source: str) -> None:
    assert error(source, LiteralContext(places, BERLIN)).column == 1


def test_integer_literals_are_untyped() -> None:
    assert p("007") == Const(0, 3, Type.UNTYPED, 7)


@pytest.mark.parametrize(
    ("source", "ppm"),
    [("10%", 100_000), ("0.5%", 5_000), ("12.25%", 122_500), ("10.00000%", 100_000),
     ("0.0001%", 1), ("250%", 2_500_000)],
)
def test_percent_literals(source: str, ppm: int) -> None:
    # A percent above 100% is a literal like any other; only reward values are bounded.
    assert p(source) == Const(0, len(source), Type.PERCENT, ppm)


def test_percent_below_a_ppm_is_an_error() -> None:
    assert error("a.b > 0.00001%").column == 7


@pytest.mark.parametrize(
    ("source", "utc"),
    [
        ("2026-07-01T09:00", 1_782_889_200),  # Berlin summer: 07:00Z
        ("2026-01-01T09:00", 1_767_254_400),  # Berlin winter: 08:00Z
        ("2026-07-01T09:00:30", 1_782_889_230),
        ("2026-07-01T09:00Z", 1_782_896_400),
        ("2026-07-01T09:00:00Z", 1_782_896_400),
        ("2026-07-01T09:00+02:00", 1_782_889_200),
        ("2026-07-01T09:00-03:30", 1_782_909_000),
        ("2026-07-01T09:00+23:59", 1_782_810_060),
        ("2026-03-29T02:30", 1_774_747_800),  # in the spring-forward gap: 01:30Z
        ("2026-03-29T03:30", 1_774_747_800),  # the same instant, written as it exists
        ("2026-10-25T02:30", 1_792_888_200),  # ambiguous: the first occurrence, 00:30Z
        ("2026-10-25T02:30+02:00", 1_792_888_200),
        ("2026-10-25T02:30+01:00", 1_792_891_800),  # the second occurrence, 01:30Z
    ],
)
def test_time_literals_in_the_program_zone(source: str, utc: int) -> None:
    assert p(source) == Const(0, len(source), Type.TIME, utc)


def test_time_literals_depend_on_the_zone() -> None:
    lisbon = LiteralContext(2, ZoneInfo("Europe/Lisbon"))
    assert p("2026-07-01T09:00", lisbon) == Const(0, 16, Type.TIME, 1_782_892_800)  # 08:00Z
    assert p("2026-07-01T09:00Z", lisbon) == Const(0, 17, Type.TIME, 1_782_896_400)


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("a.b > 2026-07-01", 7),
        ("a.b > 2026-07-01T09:00:00.5", 7),
        ("a.b > 2026-07-01T09:00+24:00", 7),
        ("a.b > 2026-07-01T09:00+01:60", 7),
        ("a.b > 2026-02-29T09:00", 7),
        ("a.b > 2026-07-01T24:00", 7),
        ("a.b > 2026-07-01T09:00:60", 7),
        ("a.b > 2026-07-01T09", 7),
        ("a.b > 30d", 7),
        ("a.b > 1.", 7),
        ("a.b > 5x", 7),
    ],
)
def test_malformed_literals(source: str, column: int) -> None:
    assert error(source).column == column


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ('"pickup"', "pickup"),
        ('""', ""),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('"caf\u00e9 \U0001f600"', "caf\u00e9 \U0001f600"),
        ('"and or not 5%"', "and or not 5%"),
    ],
)
def test_string_literals(source: str, value: str) -> None:
    assert p(source) == Const(0, len(source), Type.STRING, value)


@pytest.mark.parametrize(("source", "column"), [('"a\\n"', 3), ('"a\\', 3), ('"abc', 1),
                                                ('x.y == "a" "b"', 12)])
def test_string_errors(source: str, column: int) -> None:
    assert error(source).column == column


def test_booleans() -> None:
    assert p("true") == Const(0, 4, Type.BOOL, True)
    assert p("false") == Const(0, 5, Type.BOOL, False)


# --- spans -------------------------------------------------------------------------------------


def test_spans_cover_each_node_exactly() -> None:
    source = 'not (order.subtotal >= 20.00 and "vip" in customer.tags) or sum(item.qty) > 3'
    node = p(source)
    seen: list[str] = []

    def walk(n: Node) -> None:
        seen.append(text_of(n, source))
        if isinstance(n, Logic):
            for o in n.operands:
                walk(o)
        elif isinstance(n, Not):
            walk(n.operand)
        elif isinstance(n, Paren):
            walk(n.inner)
        elif isinstance(n, (Compare, Arith)):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, InSet):
            walk(n.value)
            walk(n.collection)
        elif isinstance(n, Aggregate) and n.value is not None:
            walk(n.value)

    walk(node)
    assert seen == [
        source,
        'not (order.subtotal >= 20.00 and "vip" in customer.tags)',
        '(order.subtotal >= 20.00 and "vip" in customer.tags)',
        'order.subtotal >= 20.00 and "vip" in customer.tags',
        "order.subtotal >= 20.00",
        "order.subtotal",
        "20.00",
        '"vip" in customer.tags',
        '"vip"',
        "customer.tags",
        "sum(item.qty) > 3",
        "sum(item.qty)",
        "item.qty",
        "3",
    ]


def test_spans_are_offsets_into_the_given_text() -> None:
    # The loader trims a condition before parsing; the parser itself keeps offsets exact.
    source = "  a.b  ==  c.d  "
    node = p(source)
    assert isinstance(node, Compare)
    assert (node.start, node.end, node.op_start) == (2, 14, 7)


def test_in_list_span_ends_after_the_bracket() -> None:
    source = 'order.channel in ["web", "pos"] and a.b'
    node = p(source)
    assert isinstance(node, Logic)
    assert text_of(node.operands[0], source) == 'order.channel in ["web", "pos"]'


# --- syntax errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("", 1),
        ("   ", 1),
        ("a.b ==", 7),
        ("(a.b", 5),
        ("a.b)", 4),
        ("a.b c.d", 5),
        ("1 < a.b < 3", 9),
        ("a.b == c.d != e.f", 12),
        ("a.b in [1] in [2]", 12),
        ('"x" in a.b == true', 12),
        ("a.b in [1 2]", 11),
        ("a.b in [1,]", 11),
        ("a.b in [c.d]", 9),
        ("a.b in [-1]", 9),
        ("- 1 < a.b", 1),
        ("a.b / 2", 5),
        ("a.b % 2", 5),
        ("a.b = 2", 5),
        ("a.b && c.d", 5),
        ("a.b ! c.d", 5),
        ("'x' == a.b", 1),
        ("count > 1", 7),
        ("count()", 7),
        ("any(a.b, c.d)", 8),
        ("sum(a.b, c.d, e.f)", 13),
        ("a.", 2),
        ("item.1", 5),
        ("a.b > \u00b2", 7),
        ("a.b > \u0663", 7),
        ("a.b\u00a0> 1", 4),
        ("AND", 1),
        ("a.b Or c.d", 5),
        ("Not a.b", 1),
        ("a.b == TRUE", 8),
        ("SUM(a.b) > 1", 1),
    ],
)
def test_syntax_errors_point_at_the_offender(source: str, column: int) -> None:
    err = error(source)
    assert err.column == column
    assert 1 <= err.column <= len(source) + 1


def test_a_huge_integer_is_an_error_not_a_crash() -> None:
    assert error("a.b > " + "9" * 5000).column == 7


def test_nesting_up_to_the_limit() -> None:
    depth = MAX_DEPTH - 1  # parentheses, plus the literal inside
    node = p("(" * depth + "true" + ")" * depth)
    for _ in range(depth):
        assert isinstance(node, Paren)
        node = node.inner
    assert node == Const(depth, depth + 4, Type.BOOL, True)


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH, MAX_DEPTH + 1),
        ("(" * 10_000 + "true" + ")" * 10_000, MAX_DEPTH + 1),
        ("not " * 10_000 + "true", 4 * MAX_DEPTH + 1),
        ("any(" * 10_000, 4 * MAX_DEPTH + 1),
        (" + ".join(["a.b"] * 10_000), 1),
        ("a.b * " * 60 + "1", 1),
    ],
)
def test_nesting_beyond_the_limit_is_an_error(source: str, column: int) -> None:
    err = error(source)
    assert err.column == column and "deep" in err.message


def test_wide_expressions_are_not_deep() -> None:
    node = p(" and ".join(["a.b"] * 5_000))
    assert isinstance(node, Logic) and len(node.operands) == 5_000
    node = p("a.b in [" + ", ".join(["1"] * 5_000) + "]")
    assert isinstance(node, InList) and len(node.items) == 5_000


def test_tokenizer_positions() -> None:
    tokens = tokenize('a.b >= 1.50 and "x"', EUR)
    assert [(t.kind, t.text, t.start, t.end) for t in tokens] == [
        ("name", "a.b", 0, 3),
        ("op", ">=", 4, 6),
        ("literal", "1.50", 7, 11),
        ("keyword", "and", 12, 15),
        ("literal", '"x"', 16, 19),
        ("end", "", 19, 19),
    ]
