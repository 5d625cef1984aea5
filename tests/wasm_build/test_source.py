"""Reading a program file into positioned nodes, as YAML 1.2 (and strict JSON) read it (9.1)."""

from __future__ import annotations

import pytest

from poprules.errors import InputError, Where
from wasm_build.lang.source import Document, Flag, Map, Node, Seq, Text, read_program_text


def yaml(text: str) -> Document:
    return read_program_text(text, json_syntax=False)


def json(text: str) -> Document:
    return read_program_text(text, json_syntax=True)


def root(doc: Document) -> Map:
    assert isinstance(doc.root, Map)
    return doc.root


def value(text: str) -> Node | None:
    """The node of `v` in the one-key YAML document `v: <text>`."""
    return root(yaml(f"v: {text}\n")).items["v"]


def read_error(text: str, json_syntax: bool = False) -> InputError:
    with pytest.raises(InputError) as caught:
        read_program_text(text, json_syntax=json_syntax)
    return caught.value


# --- scalars ---------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["true", "True", "TRUE"])
def test_true(word: str) -> None:
    assert value(word) == Flag(True, Where(1, 4))


@pytest.mark.parametrize("word", ["false", "False", "FALSE"])
def test_false(word: str) -> None:
    assert value(word) == Flag(False, Where(1, 4))


@pytest.mark.parametrize("word", ["", "~", "null", "Null", "NULL"])
def test_nulls(word: str) -> None:
    assert value(word) is None


@pytest.mark.parametrize(
    "word",
    ["yes", "no", "NO", "ON", "off", "y", "n", "tRUE", "nULL", "1.005", "404", "007", "0x1F",
     "0o17", "1_000", "1e3", ".5", "-1", "+1", ".inf", ".nan", "2026-07-01", "2026-07-01T09:00",
     "12:30", "09:00-18:00", "10%", "30d", "= ", "<<"],
)
def test_plain_scalars_keep_their_exact_text(word: str) -> None:
    node = value(word)
    assert node == Text(word.strip(), False, Where(1, 4))


@pytest.mark.parametrize(
    ("written", "text"),
    [('"true"', "true"), ("'null'", "null"), ('"1.005"', "1.005"), ('""', ""),
     ('"a\\tb"', "a\tb"), ("'it''s'", "it's"), ('" 5.00 "', " 5.00 ")],
)
def test_quoted_scalars_are_text(written: str, text: str) -> None:
    assert value(written) == Text(text, True, Where(1, 4))


def test_block_scalars_are_quoted_text() -> None:
    doc = yaml("v: |\n  a\n  b\nw: >\n  a\n  b\n")
    assert root(doc).items["v"] == Text("a\nb\n", True, Where(1, 4))
    assert root(doc).items["w"] == Text("a b\n", True, Where(4, 4))


def test_multi_line_plain_scalar_is_folded() -> None:
    node = root(yaml("v: order.subtotal >= 20\n   and order.units > 1\n")).items["v"]
    assert node == Text("order.subtotal >= 20 and order.units > 1", False, Where(1, 4))


# --- collections and positions ----------------------------------------------------------------


def test_tree_and_positions() -> None:
    doc = yaml("program: shop\nrules:\n  - id: r\n    cap: {line: 1, order: ~}\n  - [a, true]\n")
    top = root(doc)
    assert top.where == Where(1, 1)
    assert list(top.items) == ["program", "rules"]
    assert top.keys["rules"] == Text("rules", False, Where(2, 1))
    rules = top.items["rules"]
    assert isinstance(rules, Seq) and rules.where == Where(3, 3)
    first, second = rules.items
    assert isinstance(first, Map) and first.where == Where(3, 5)
    cap = first.items["cap"]
    assert isinstance(cap, Map) and cap.where == Where(4, 10)
    assert cap.items == {"line": Text("1", False, Where(4, 17)), "order": None}
    assert second == Seq([Text("a", False, Where(5, 6)), Flag(True, Where(5, 9))], Where(5, 5))
    assert doc.repeated is None


def test_mapping_keys_are_text() -> None:
    top = root(yaml("404: a\ntrue: b\n~: c\n'q': d\n"))
    assert list(top.items) == ["404", "true", "", "q"]
    assert isinstance(top.keys["true"], Flag)
    assert top.keys["404"] == Text("404", False, Where(1, 1))
    assert top.keys["q"] == Text("q", True, Where(4, 1))


def test_key_order_is_file_order() -> None:
    assert list(root(yaml("z: 1\na: 2\nm: 3\n")).items) == ["z", "a", "m"]


def test_aliases_are_expanded() -> None:
    top = root(yaml("a: &x {k: v}\nb: *x\n"))
    # The alias is the anchored node itself, with the anchor's positions.
    assert top.items["b"] == Map({"k": Text("v", False, Where(1, 11))},
                                 {"k": Text("k", False, Where(1, 8))}, Where(1, 4))
    assert top.items["b"] == top.items["a"]


def test_merge_key_is_an_ordinary_key() -> None:
    top = root(yaml("a: &x {k: v}\nb:\n  <<: *x\n"))
    b = top.items["b"]
    assert isinstance(b, Map) and list(b.items) == ["<<"]


# --- repeated keys -----------------------------------------------------------------------------


def test_first_repeated_key_with_its_path() -> None:
    doc = yaml("rules:\n  - id: r\n    active:\n      days: [mon]\n      days: [tue]\n"
               "x: 1\nx: 2\n")
    assert doc.repeated == (("rules", 0, "active"), "days", Where(5, 7))
    # The first value is kept.
    rules = root(doc).items["rules"]
    assert isinstance(rules, Seq) and isinstance(rules.items[0], Map)
    active = rules.items[0].items["active"]
    assert isinstance(active, Map)
    assert active.items["days"] == Seq([Text("mon", False, Where(4, 14))], Where(4, 13))


def test_repeated_key_spelled_differently() -> None:
    # `true` and `True` are one boolean key; "1" and 1 are both the text "1".
    assert yaml("true: 1\nTrue: 2\n").repeated == ((), "true", Where(2, 1))
    assert yaml("1: a\n'1': b\n").repeated == ((), "1", Where(2, 1))


def test_repeated_key_in_json() -> None:
    doc = json('{"rules": [{"id": "r", "id": "s"}], "a": 1, "a": 2}')
    assert doc.repeated == (("rules", 0), "id", Where())


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: [1\n", Where(2, 1)),
        ("a: b: c\n", Where(1, 5)),
        ("a:\n\t- b\n", Where(2, 1)),
        ("a: 1\n---\nb: 2\n", Where(2, 1)),
        ("a: *nowhere\n", Where(1, 4)),
    ],
)
def test_invalid_yaml(text: str, where: Where) -> None:
    err = read_error(text)
    assert err.field == "program" and err.where == where


@pytest.mark.parametrize("text", ["a: !!int 5\n", "a: !!float 1.5\n", "a: !!binary AA==\n",
                                  "a: !local x\n", "!!omap [a: 1]\n", "a: !!set {b}\n"])
def test_tags_are_refused(text: str) -> None:
    err = read_error(text)
    assert err.field == "program" and err.where is not None and err.where.line == 1


@pytest.mark.parametrize("text", ["a: !!str 5\n", "a: !!map {b: c}\n", "a: !!seq [b]\n"])
def test_plain_core_tags_are_allowed(text: str) -> None:
    assert root(yaml(text)).items["a"] is not None


def test_collection_keys_are_refused() -> None:
    err = read_error("? [a]\n: b\n")
    assert err.field == "program" and err.where == Where(1, 3)


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert read_error("\n".join(lines) + "\n").field == "program"


def test_recursive_alias_is_refused() -> None:
    assert read_error("a: &a [*a]\n").field == "program"


def test_deep_nesting_is_refused() -> None:
    assert read_error("[" * 5_000 + "]" * 5_000).field == "program"
    assert read_error("[" * 5_000 + "]" * 5_000, json_syntax=True).field == "program"


def test_empty_document() -> None:
    assert yaml("").root is None
    assert yaml("# nothing\n").root is None


# --- JSON ---------------------------------------------------------------------------------------


def test_json_tree() -> None:
    doc = json('{"a": 1, "b": 1.50, "c": "1.50", "d": true, "e": null, "f": [false, {"g": "x"}]}')
    nowhere = Where()
    assert root(doc).items == {
        "a": Text("1", False, nowhere),
        "b": Text("1.50", False, nowhere),  # exact: never a float
        "c": Text("1.50", True, nowhere),
        "d": Flag(True, nowhere),
        "e": None,
        "f": Seq([Flag(False, nowhere),
                  Map({"g": Text("x", True, nowhere)}, {"g": Text("g", True, nowhere)}, nowhere)],
                 nowhere),
    }


def test_json_numbers_keep_their_text() -> None:
    top = root(json('{"a": 1e3, "b": -0, "c": 10.000}'))
    assert [n.text for n in top.items.values() if isinstance(n, Text)] == ["1e3", "0", "10.000"]


@pytest.mark.parametrize("text", ["{", "[1,]", '{"a": NaN}', '{"a": Infinity}', "{'a': 1}",
                                  '{"a": 1} x', ""])
def test_invalid_json(text: str) -> None:
    assert read_error(text, json_syntax=True).field == "program"


def test_json_top_level_need_not_be_an_object_here() -> None:
    # The reader only builds the tree; `parse_program` refuses a root that is not a mapping.
    assert json("[1]").root == Seq([Text("1", False, Where())], Where())
