"""Catalogs, JSON and CSV (spec 1.2), and their error fields and check order (spec 9.3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from poprules.errors import InputError
from wasm_build.lang.ast import Type
from wasm_build.lang.catalog import load_catalog, parse_catalog_csv, parse_catalog_json
from wasm_build.lang.model import Catalog, Item

TEE = {"sku": "TEE-01", "price": "19.90", "category": "apparel"}


def catalog(document: dict[str, Any] | str, currency: str = "EUR") -> Catalog:
    text = document if isinstance(document, str) else json.dumps(document)
    return parse_catalog_json(text.encode(), currency=currency)


def items(*items: Any, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"items": list(items)}
    if attributes is not None:
        document["attributes"] = attributes
    return document


def error(document: dict[str, Any] | str, currency: str = "EUR") -> InputError:
    with pytest.raises(InputError) as caught:
        catalog(document, currency)
    return caught.value


def csv_catalog(text: str | bytes, currency: str = "EUR") -> Catalog:
    data = text.encode() if isinstance(text, str) else text
    return parse_catalog_csv(data, currency=currency)


def csv_error(text: str | bytes, currency: str = "EUR") -> InputError:
    with pytest.raises(InputError) as caught:
        csv_catalog(text, currency)
    return caught.value


# --- JSON: happy paths -------------------------------------------------------------------------


def test_spec_example() -> None:
    parsed = catalog(
        {
            "currency": "EUR",
            "attributes": {
                "on_sale": "bool",
                "local": "bool",
                "repairable": "bool",
                "weight_g": "int",
            },
            "items": [
                {
                    "sku": "TEE-01",
                    "title": "Organic tee",
                    "price": "19.90",
                    "category": "apparel",
                    "brand": "ana",
                    "tags": ["organic", "local"],
                    "on_sale": False,
                    "local": True,
                }
            ],
        }
    )
    assert parsed.currency == "EUR"
    assert list(parsed.attributes) == ["on_sale", "local", "repairable", "weight_g"]
    assert parsed.attributes["weight_g"] is Type.INT
    assert parsed.items == (
        Item(
            sku="TEE-01",
            title="Organic tee",
            price=1990,
            category="apparel",
            brand="ana",
            tags=frozenset({"organic", "local"}),
            attributes={"on_sale": False, "local": True, "repairable": False, "weight_g": 0},
        ),
    )
    assert parsed.by_sku["TEE-01"] is parsed.items[0]


def test_defaults_are_filled() -> None:
    declared = {"a": "bool", "b": "int", "c": "money", "d": "string"}
    item = catalog(items(TEE, attributes=declared)).items[0]
    assert (item.title, item.brand, item.tags) == ("", "", frozenset())
    assert dict(item.attributes) == {"a": False, "b": 0, "c": 0, "d": ""}


def test_attribute_values() -> None:
    declared = {"sale": "bool", "weight": "int", "deposit": "money", "origin": "string"}
    item = dict(TEE, sale=True, weight=-12, deposit=" 0.25 ", origin="PT")
    assert dict(catalog(items(item, attributes=declared)).items[0].attributes) == {
        "sale": True,
        "weight": -12,
        "deposit": 25,
        "origin": "PT",
    }


def test_empty_catalog() -> None:
    parsed = catalog({"items": []})
    assert parsed.items == () and dict(parsed.attributes) == {}


@pytest.mark.parametrize(
    ("price", "currency", "minor"),
    [
        ('"19.90"', "EUR", 1990),
        ('"  19.90 "', "EUR", 1990),
        ('"\\t7\\n"', "EUR", 700),
        ("19.9", "EUR", 1990),
        ("19.90", "EUR", 1990),
        ("20", "EUR", 2000),
        ('"0"', "EUR", 0),
        ("0", "EUR", 0),
        ('"1.000"', "EUR", 100),
        ('"1500"', "JPY", 1500),
        ('"100.00"', "JPY", 100),
        ("1500", "JPY", 1500),
        ('"1.234"', "KWD", 1234),
        ("1.5", "KWD", 1500),
        ('"0.0001"', "CLF", 1),
    ],
)
def test_prices(price: str, currency: str, minor: int) -> None:
    text = f'{{"items": [{{"sku": "A", "price": {price}, "category": "c"}}]}}'
    assert catalog(text, currency).items[0].price == minor


def test_currency_may_be_given() -> None:
    assert catalog({"currency": "JPY", "items": []}, "JPY").currency == "JPY"


def test_skus_match_exactly() -> None:
    precomposed = dict(TEE, sku="caf\u00e9")
    combining = dict(TEE, sku="cafe\u0301")
    upper = dict(TEE, sku="CAF\u00c9")
    parsed = catalog(items(precomposed, combining, upper))
    assert [item.sku for item in parsed.items] == ["caf\u00e9", "cafe\u0301", "CAF\u00c9"]
    assert "cafe\u0301" in parsed.by_sku and "caf\u00e9" in parsed.by_sku


def test_spaces_in_text_fields_are_kept() -> None:
    item = catalog(items(dict(TEE, sku=" A ", title=" t "))).items[0]
    assert (item.sku, item.title) == (" A ", " t ")


# --- JSON: errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "catalog"),
        ("not json", "catalog"),
        ("[]", "catalog"),
        ('"items"', "catalog"),
        ('{"items": [}', "catalog"),
        ('{"items": [], "currency": NaN}', "catalog"),
        ('{"items": [], "items": []}', "catalog.items"),
        ('{"items": [{"sku": "A", "sku": "B"}]}', "catalog.sku"),
        ('{"items": [], "attributes": {"a": "bool", "a": "int"}}', "catalog.a"),
    ],
)
def test_file_errors(text: str, field: str) -> None:
    assert error(text).field == field


def test_not_utf8() -> None:
    with pytest.raises(InputError) as caught:
        parse_catalog_json(b'{"items": [{"sku": "\xe9"}]}', currency="EUR")
    assert caught.value.field == "catalog"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"items": [], "version": 1}, "catalog.version"),
        ({"Items": []}, "catalog.Items"),
        ({"currency": "USD", "items": []}, "catalog.currency"),
        ({"currency": "eur", "items": []}, "catalog.currency"),
        ({"currency": None, "items": []}, "catalog.currency"),
        ({"currency": 978, "items": []}, "catalog.currency"),
        ({"attributes": ["on_sale"], "items": []}, "catalog.attributes"),
        ({"attributes": None, "items": []}, "catalog.attributes"),
        ({"attributes": {"On_sale": "bool"}, "items": []}, "catalog.attributes.On_sale"),
        ({"attributes": {"1st": "bool"}, "items": []}, "catalog.attributes.1st"),
        ({"attributes": {"on-sale": "bool"}, "items": []}, "catalog.attributes.on-sale"),
        ({"attributes": {"": "bool"}, "items": []}, "catalog.attributes."),
        ({"attributes": {"caf\u00e9": "bool"}, "items": []}, "catalog.attributes.caf\u00e9"),
        ({"attributes": {"net": "money"}, "items": []}, "catalog.attributes.net"),
        ({"attributes": {"qty": "int"}, "items": []}, "catalog.attributes.qty"),
        ({"attributes": {"price": "money"}, "items": []}, "catalog.attributes.price"),
        ({"attributes": {"a": "float"}, "items": []}, "catalog.attributes.a"),
        ({"attributes": {"a": "Bool"}, "items": []}, "catalog.attributes.a"),
        ({"attributes": {"a": "set"}, "items": []}, "catalog.attributes.a"),
        ({"attributes": {"a": None}, "items": []}, "catalog.attributes.a"),
        ({"attributes": {"a": ["bool"]}, "items": []}, "catalog.attributes.a"),
        ({}, "catalog.items"),
        ({"items": None}, "catalog.items"),
        ({"items": {"TEE-01": TEE}}, "catalog.items"),
    ],
)
def test_top_level_errors(document: dict[str, Any], field: str) -> None:
    assert error(document).field == field


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (dict(TEE, colour="red"), "catalog.items[0].colour"),
        (dict(TEE, base="1.00"), "catalog.items[0].base"),
        (dict(TEE, Sku="x"), "catalog.items[0].Sku"),
        ({"price": "1.00", "category": "c"}, "catalog.items[0].sku"),
        (dict(TEE, sku=""), "catalog.items[0].sku"),
        (dict(TEE, sku=None), "catalog.items[0].sku"),
        (dict(TEE, sku=101), "catalog.items[0].sku"),
        (dict(TEE, sku=["TEE-01"]), "catalog.items[0].sku"),
        ({"sku": "A", "category": "c"}, "catalog.items[0].price"),
        (dict(TEE, price=None), "catalog.items[0].price"),
        (dict(TEE, price=True), "catalog.items[0].price"),
        (dict(TEE, price=False), "catalog.items[0].price"),
        (dict(TEE, price=-1), "catalog.items[0].price"),
        (dict(TEE, price="-1.00"), "catalog.items[0].price"),
        (dict(TEE, price="+1.00"), "catalog.items[0].price"),
        (dict(TEE, price="1.005"), "catalog.items[0].price"),
        (dict(TEE, price="1,00"), "catalog.items[0].price"),
        (dict(TEE, price="1_000"), "catalog.items[0].price"),
        (dict(TEE, price="1e3"), "catalog.items[0].price"),
        (dict(TEE, price=".5"), "catalog.items[0].price"),
        (dict(TEE, price="5."), "catalog.items[0].price"),
        (dict(TEE, price=""), "catalog.items[0].price"),
        (dict(TEE, price="EUR 5"), "catalog.items[0].price"),
        (dict(TEE, price=["5"]), "catalog.items[0].price"),
        (dict(TEE, price={"amount": "5"}), "catalog.items[0].price"),
        (dict(TEE, price="1" * 5000), "catalog.items[0].price"),
        ({"sku": "A", "price": "1.00"}, "catalog.items[0].category"),
        (dict(TEE, category=""), "catalog.items[0].category"),
        (dict(TEE, category=None), "catalog.items[0].category"),
        (dict(TEE, category=7), "catalog.items[0].category"),
        (dict(TEE, title=None), "catalog.items[0].title"),
        (dict(TEE, title=1), "catalog.items[0].title"),
        (dict(TEE, brand=None), "catalog.items[0].brand"),
        (dict(TEE, brand=False), "catalog.items[0].brand"),
        (dict(TEE, tags=None), "catalog.items[0].tags"),
        (dict(TEE, tags="organic"), "catalog.items[0].tags"),
        (dict(TEE, tags=["organic", 1]), "catalog.items[0].tags"),
        (dict(TEE, tags=[None]), "catalog.items[0].tags"),
    ],
)
def test_item_errors(item: dict[str, Any], field: str) -> None:
    assert error(items(item)).field == field


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"items": [{"sku": "A", "price": 1.005, "category": "c"}]}', "catalog.items[0].price"),
        ('{"items": [{"sku": "A", "price": 1e3, "category": "c"}]}', "catalog.items[0].price"),
        ('{"items": [{"sku": "A", "price": -1.5, "category": "c"}]}', "catalog.items[0].price"),
        ('{"items": [{"sku": "A", "price": 1.5, "category": "c"}]}', None),
    ],
)
def test_price_as_json_number(text: str, field: str | None) -> None:
    if field is None:
        assert catalog(text).items[0].price == 150
    else:
        assert error(text).field == field


@pytest.mark.parametrize(
    ("price", "currency"),
    [("1.005", "EUR"), ("1.5", "JPY"), ("1.0001", "KWD"), ("0.00001", "CLF")],
)
def test_amounts_are_never_rounded(price: str, currency: str) -> None:
    exc = error(items(dict(TEE, price=price)), currency)
    assert exc.field == "catalog.items[0].price"
    assert price in exc.message and currency in exc.message


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("bool", None),
        ("bool", 1),
        ("bool", 0),
        ("bool", "true"),
        ("int", None),
        ("int", True),
        ("int", "3"),
        ("int", 3.5),
        ("int", [3]),
        ("money", None),
        ("money", True),
        ("money", "-1"),
        ("money", "1.005"),
        ("string", None),
        ("string", 3),
        ("string", False),
        ("string", ["a"]),
    ],
)
def test_attribute_value_errors(type_: str, value: Any) -> None:
    document = items(dict(TEE, attr=value), attributes={"attr": type_})
    assert error(document).field == "catalog.items[0].attr"


def test_int_attribute_refuses_a_json_number_with_a_fraction() -> None:
    text = '{"attributes": {"n": "int"}, "items": [{"sku": "A", "price": 1, "category": "c", "n": 2.0}]}'
    assert error(text).field == "catalog.items[0].n"


def test_item_must_be_an_object() -> None:
    assert error(items(TEE, ["TEE-02"])).field == "catalog.items[1]"
    assert error(items(TEE, None)).field == "catalog.items[1]"


def test_repeated_sku_is_reported_on_the_later_item() -> None:
    exc = error(items(TEE, dict(TEE, title="again")))
    assert exc.field == "catalog.items[1].sku"
    assert "TEE-01" in exc.message


def test_repeated_sku_is_case_sensitive() -> None:
    assert len(catalog(items(TEE, dict(TEE, sku="tee-01"))).items) == 2


@pytest.mark.parametrize(
    ("document", "field"),
    [
        # top level: unknown keys, currency, attributes, items
        ({"items": None, "attributes": 1, "currency": "USD", "extra": 1}, "catalog.extra"),
        ({"items": None, "attributes": 1, "currency": "USD"}, "catalog.currency"),
        ({"items": None, "attributes": 1}, "catalog.attributes"),
        ({"items": None, "attributes": {"net": "bool", "x": "float"}}, "catalog.attributes.net"),
        ({"items": None, "attributes": {"x": "float", "net": "bool"}}, "catalog.attributes.x"),
        # the declarations are checked before any item
        ({"items": [None], "attributes": {"x": "float"}}, "catalog.attributes.x"),
        # items in order
        ({"items": [dict(TEE, price="-1"), None]}, "catalog.items[0].price"),
    ],
)
def test_top_level_check_order(document: dict[str, Any], field: str) -> None:
    assert error(document).field == field


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"zz": 1, "sku": None, "price": None}, "catalog.items[1].zz"),
        ({"sku": "TEE-01", "price": None, "category": None}, "catalog.items[1].sku"),
        ({"sku": "B", "price": None, "category": None}, "catalog.items[1].price"),
        ({"sku": "B", "price": "1", "category": None, "title": 1}, "catalog.items[1].category"),
        (
            {"sku": "B", "price": "1", "category": "c", "title": 1, "brand": 1},
            "catalog.items[1].title",
        ),
        (
            {"sku": "B", "price": "1", "category": "c", "brand": 1, "tags": 1},
            "catalog.items[1].brand",
        ),
        ({"sku": "B", "price": "1", "category": "c", "tags": 1, "a": 1}, "catalog.items[1].tags"),
        # attributes in declaration order, not item key order
        ({"sku": "B", "price": "1", "category": "c", "b": "x", "a": 1}, "catalog.items[1].a"),
    ],
)
def test_item_check_order(item: dict[str, Any], field: str) -> None:
    document = items(TEE, item, attributes={"a": "bool", "b": "int"})
    assert error(document).field == field


def test_messages_say_what_was_expected_and_found() -> None:
    exc = error(items(dict(TEE, price=True)))
    assert "amount" in exc.message and "true" in exc.message
    exc = error(items(dict(TEE, weight="3"), attributes={"weight": "int"}))
    assert "integer" in exc.message and '"3"' in exc.message
    exc = error({"currency": "USD", "items": []})
    assert "EUR" in exc.message and "USD" in exc.message


# --- CSV: happy paths ----------------------------------------------------------------------------


def test_csv_spec_example() -> None:
    parsed = csv_catalog(
        "sku,title,price,category,brand,tags,on_sale:bool,weight_g:int\n"
        "TEE-01,Organic tee,19.90,apparel,ana,organic;local,false,180\n"
    )
    assert parsed.currency == "EUR"
    assert dict(parsed.attributes) == {"on_sale": Type.BOOL, "weight_g": Type.INT}
    assert parsed.items == (
        Item(
            sku="TEE-01",
            title="Organic tee",
            price=1990,
            category="apparel",
            brand="ana",
            tags=frozenset({"organic", "local"}),
            attributes={"on_sale": False, "weight_g": 180},
        ),
    )


def test_csv_json_equivalence() -> None:
    from_csv = csv_catalog(
        "sku,price,category,tags,deposit:money,origin:string\nA,1.5,c,x; y,0.25,PT\nB,2,d,,,\n"
    )
    from_json = catalog(
        {
            "attributes": {"deposit": "money", "origin": "string"},
            "items": [
                {
                    "sku": "A",
                    "price": "1.5",
                    "category": "c",
                    "tags": ["x", "y"],
                    "deposit": "0.25",
                    "origin": "PT",
                },
                {"sku": "B", "price": 2, "category": "d"},
            ],
        }
    )
    assert from_csv == from_json


def test_csv_bom_quoting_blank_lines_and_trimming() -> None:
    text = (
        "\ufeff sku , price ,category,title, flag : bool \r\n"
        "\r\n"
        '"TEE-01","19.90",  apparel ,"Tee, organic, ""best""",TRUE\r\n'
        "   \r\n"
        '"MUG-02",7.45,home,"two\nlines",False\r\n'
        "\r\n"
    )
    parsed = csv_catalog(text)
    assert [item.sku for item in parsed.items] == ["TEE-01", "MUG-02"]
    assert parsed.items[0].title == 'Tee, organic, "best"'
    assert (parsed.items[0].price, parsed.items[0].category) == (1990, "apparel")
    assert parsed.items[1].title == "two\nlines"
    assert [item.attributes["flag"] for item in parsed.items] == [True, False]


def test_csv_empty_cells_are_defaults() -> None:
    text = "sku,price,category,title,brand,tags,a:bool,b:int,c:money,d:string\nA,0,c,,,,,,,\n"
    item = csv_catalog(text).items[0]
    assert (item.price, item.title, item.brand, item.tags) == (0, "", "", frozenset())
    assert dict(item.attributes) == {"a": False, "b": 0, "c": 0, "d": ""}


def test_csv_tags() -> None:
    text = "sku,price,category,tags\nA,1,c, organic ;; local ;organic;\n"
    assert csv_catalog(text).items[0].tags == frozenset({"organic", "local"})


@pytest.mark.parametrize(("cell", "value"), [("true", True), ("FALSE", False), ("tRuE", True)])
def test_csv_bool_in_any_case(cell: str, value: bool) -> None:
    text = f"sku,price,category,flag:bool\nA,1,c,{cell}\n"
    assert csv_catalog(text).items[0].attributes["flag"] is value


@pytest.mark.parametrize(("cell", "value"), [("180", 180), ("-5", -5), ("+7", 7), ("007", 7)])
def test_csv_int(cell: str, value: int) -> None:
    text = f"sku,price,category,n:int\nA,1,c,{cell}\n"
    assert csv_catalog(text).items[0].attributes["n"] == value


@pytest.mark.parametrize(
    ("price", "currency", "minor"),
    [("19.90", "EUR", 1990), ("1500", "JPY", 1500), ("1.234", "KWD", 1234), ("1.000", "EUR", 100)],
)
def test_csv_prices(price: str, currency: str, minor: int) -> None:
    text = f"sku,price,category\nA,{price},c\n"
    parsed = csv_catalog(text, currency)
    assert parsed.currency == currency
    assert parsed.items[0].price == minor


def test_csv_column_order_is_free() -> None:
    parsed = csv_catalog("z:int,category,price,a:bool,sku\n1,c,2,true,A\n")
    assert list(parsed.attributes) == ["z", "a"]
    assert parsed.items[0].sku == "A" and parsed.items[0].price == 200


def test_csv_header_only() -> None:
    assert csv_catalog("sku,price,category\n").items == ()


def test_csv_skus_match_exactly() -> None:
    parsed = csv_catalog("sku,price,category\ncaf\u00e9,1,c\ncafe\u0301,1,c\n")
    assert [item.sku for item in parsed.items] == ["caf\u00e9", "cafe\u0301"]


# --- CSV: errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "catalog.header"),
        ("\n\n  \n", "catalog.header"),
        ("\ufeff", "catalog.header"),
        ("price,category\n", "catalog.header"),
        ("sku,category\n", "catalog.header"),
        ("sku,price\n", "catalog.header"),
        ("sku,price,category,colour\n", "catalog.header.colour"),
        ("sku,price,category, colour \n", "catalog.header.colour"),
        ("sku,price,category,\n", "catalog.header."),
        ("sku,price,category,base\n", "catalog.header.base"),
        ("sku,price,category,Title\n", "catalog.header.Title"),
        ("sku,price,category,sku\n", "catalog.header.sku"),
        ("sku,price,category,tags,tags\n", "catalog.header.tags"),
        ("sku,price,category,a:bool,a:int\n", "catalog.header.a:int"),
        ("sku,price,category,a:bool, a : bool\n", "catalog.header.a : bool"),
        ("sku,price,category,title:string\n", "catalog.header.title:string"),
        ("sku,price:money,category\n", "catalog.header.price:money"),
        ("sku,price,category,net:money\n", "catalog.header.net:money"),
        ("sku,price,category,qty:int\n", "catalog.header.qty:int"),
        ("sku,price,category,On_sale:bool\n", "catalog.header.On_sale:bool"),
        ("sku,price,category,on-sale:bool\n", "catalog.header.on-sale:bool"),
        ("sku,price,category,:bool\n", "catalog.header.:bool"),
        ("sku,price,category,a:float\n", "catalog.header.a:float"),
        ("sku,price,category,a:Bool\n", "catalog.header.a:Bool"),
        ("sku,price,category,a:\n", "catalog.header.a:"),
        ("sku,price,category,a:bool:int\n", "catalog.header.a:bool:int"),
    ],
)
def test_csv_header_errors(text: str, field: str) -> None:
    assert csv_error(text).field == field


def test_csv_header_columns_before_required_columns() -> None:
    assert csv_error("sku,colour\n").field == "catalog.header.colour"


def test_csv_header_before_rows() -> None:
    assert csv_error("sku,price,category,colour\nA\n").field == "catalog.header.colour"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (b'sku,price,category\n"A,1,c\n', "catalog"),
        (b'sku,price,category\n"A"x,1,c\n', "catalog"),
        (b"sku,price,category\nA,1,caf\xe9\n", "catalog"),
        # the file is read before any row is checked
        (b'sku,price,category\n,1,c\n"A"x,1,c\n', "catalog"),
    ],
)
def test_csv_file_errors(text: bytes, field: str) -> None:
    assert csv_error(text).field == field


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ("A,1\n", "catalog.items[0]"),
        ("A,1,c,x,y\n", "catalog.items[0]"),
        ("A,1,c,,\n", "catalog.items[0]"),
        (",1,c,\n", "catalog.items[0].sku"),
        ('"",1,c,\n', "catalog.items[0].sku"),
        ('"  ",1,c,\n', "catalog.items[0].sku"),
        ("A,,c,\n", "catalog.items[0].price"),
        ("A,-1,c,\n", "catalog.items[0].price"),
        ("A,1.005,c,\n", "catalog.items[0].price"),
        ("A,1e3,c,\n", "catalog.items[0].price"),
        ("A,EUR 1,c,\n", "catalog.items[0].price"),
        # RFC 4180: a quote opens a quoted cell only as its first character
        ('A, "1.00",c,\n', "catalog.items[0].price"),
        ("A,1,,\n", "catalog.items[0].category"),
        ("A,1,c,\nA,2,d,\n", "catalog.items[1].sku"),
        ("A,1,c,\n\n\nB,1,c\n", "catalog.items[1]"),
    ],
)
def test_csv_row_errors(rows: str, field: str) -> None:
    assert csv_error("sku,price,category,title\n" + rows).field == field


@pytest.mark.parametrize(
    ("cell", "type_"),
    [
        ("yes", "bool"),
        ("1", "bool"),
        ("t", "bool"),
        ("3.5", "int"),
        ("1e3", "int"),
        ("- 3", "int"),
        ("3,000", "int"),
        ("9" * 5000, "int"),
        ("-1", "money"),
        ("1.005", "money"),
    ],
)
def test_csv_attribute_errors_use_the_name(cell: str, type_: str) -> None:
    text = f'sku,price,category,on_sale:{type_}\nA,1,c,"{cell}"\n'
    exc = csv_error(text)
    assert exc.field == "catalog.items[0].on_sale"
    assert cell in exc.message


def test_csv_row_check_order() -> None:
    header = "sku,price,category,title,a:bool,b:int\n"
    assert csv_error(header + ",x,,,x,x\n").field == "catalog.items[0].sku"
    assert csv_error(header + "A,x,,,x,x\n").field == "catalog.items[0].price"
    assert csv_error(header + "A,1,,,x,x\n").field == "catalog.items[0].category"
    assert csv_error(header + "A,1,c,,x,x\n").field == "catalog.items[0].a"
    assert csv_error(header + "A,1,c,,true,x\n").field == "catalog.items[0].b"


def test_csv_errors_give_the_file_line() -> None:
    text = '\n\nsku,price,category,title\nA,1,c,"two\nlines"\n\nB,1.005,c,t\n'
    exc = csv_error(text)
    assert exc.field == "catalog.items[1].price"
    assert exc.where is not None and exc.where.line == 7
    exc = csv_error("\nsku,price,category,colour\n")
    assert exc.where is not None and exc.where.line == 2


# --- files ---------------------------------------------------------------------------------------


def test_load_catalog_picks_the_format_by_name(tmp_path: Path) -> None:
    json_path = tmp_path / "catalog.json"
    json_path.write_text(json.dumps(items(TEE)))
    csv_path = tmp_path / "CATALOG.CSV"
    csv_path.write_text("sku,price,category\nTEE-01,19.90,apparel\n")
    other = tmp_path / "catalog.txt"
    other.write_text(json.dumps(items(TEE)))
    from_json = load_catalog(json_path, currency="EUR")
    assert from_json == load_catalog(str(csv_path), currency="EUR")
    assert from_json == load_catalog(other, currency="EUR")


def test_load_catalog_unreadable(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(InputError) as caught:
        load_catalog(missing, currency="EUR")
    assert caught.value.field == "catalog"
    assert caught.value.location().startswith(f"{missing}: catalog: ")
    with pytest.raises(InputError) as caught:
        load_catalog(tmp_path, currency="EUR")
    assert caught.value.field == "catalog"


def test_load_catalog_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("sku,price,category\nA,1.005,c\n")
    with pytest.raises(InputError) as caught:
        load_catalog(path, currency="EUR")
    assert caught.value.field == "catalog.items[0].price"
    assert caught.value.location().startswith(f"{path}:2: ")


def test_catalog_is_immutable() -> None:
    item = catalog(items(dict(TEE, a=True), attributes={"a": "bool"})).items[0]
    with pytest.raises(TypeError):
        item.attributes["a"] = False  # type: ignore[index]
