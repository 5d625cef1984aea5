"""A merchant's catalog (spec 1.2), JSON or CSV, read into the checked `Catalog` model.

Both formats describe the same items, so the checks an item goes through live once
(`_item`), in the order spec 9.3 item 2 fixes; each format only supplies a `_Fields` reader
that turns its raw values (typed JSON values, or trimmed CSV cells) into checked ones. The
first problem is raised at once, with the field the contract names.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from poprules.currency import decimals
from poprules.errors import InputError, Where
from poprules.jsonio import decode_text, load_object
from poprules.literals import parse_amount, parse_integer
from poprules.request import describe_json, is_integer, is_text
from wasm_build.lang.ast import Type
from wasm_build.lang.model import ATTRIBUTE_DEFAULTS, AttributeValue, Catalog, Item

#: Names an attribute may not take: the item fields and the per-line names of conditions.
BUILTIN_NAMES = frozenset(
    {"sku", "title", "price", "category", "brand", "tags", "base", "net", "qty"}
)
#: The item fields a catalog itself sets (JSON keys, CSV columns).
ITEM_FIELDS = ("sku", "title", "price", "category", "brand", "tags")
REQUIRED_FIELDS = ("sku", "price", "category")
ATTRIBUTE_TYPES: Mapping[str, Type] = {
    "bool": Type.BOOL,
    "int": Type.INT,
    "money": Type.MONEY,
    "string": Type.STRING,
}
_TOP_LEVEL = ("currency", "attributes", "items")
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# JSON's own whitespace: what surrounds a quoted amount or a CSV cell without meaning.
_SPACE = " \t\r\n"
_MISSING = object()


def load_catalog(path: str | os.PathLike[str], *, currency: str) -> Catalog:
    """Read a catalog file; the name alone picks the format, as for programs (spec 1.1).
    Every error carries the file's name, so the CLI can point at it."""
    source = str(path)
    parse = parse_catalog_csv if Path(path).name.lower().endswith(".csv") else parse_catalog_json
    try:
        return parse(Path(path).read_bytes(), currency=currency)
    except OSError as exc:
        message = f"cannot read the catalog: {exc.strerror or exc}"
        raise InputError("catalog", message).from_source(source) from None
    except InputError as exc:
        raise exc.from_source(source) from None


# --- attribute declarations ----------------------------------------------------------------


def _check_name(name: str, field: str, where: Where | None = None) -> None:
    if _NAME.fullmatch(name) is None:
        raise InputError(
            field,
            f"attribute name {name!r} must be a lowercase letter or _ followed by lowercase "
            "letters, digits and _",
            where=where,
        )
    if name in BUILTIN_NAMES:
        raise InputError(
            field, f"{name!r} is a built-in name and cannot be an attribute", where=where
        )


def _attribute_type(value: Any, field: str, where: Where | None = None) -> Type:
    if not is_text(value) or value not in ATTRIBUTE_TYPES:
        raise InputError(
            field,
            f"expected an attribute type (bool, int, money or string), found {describe_json(value)}",
            where=where,
        )
    return ATTRIBUTE_TYPES[value]


# --- one item, whatever the format ---------------------------------------------------------


class _Fields(Protocol):
    """One item's raw values, read into checked ones; every error names the item's field."""

    def error(self, key: str, message: str) -> InputError: ...

    def text(self, key: str, *, required: bool) -> str: ...

    def amount(self, key: str, *, required: bool) -> int: ...

    def tags(self) -> frozenset[str]: ...

    def attribute(self, name: str, type_: Type) -> AttributeValue: ...


def _item(fields: _Fields, attributes: Mapping[str, Type], seen: set[str]) -> Item:
    """Check one item in the order of spec 9.3 item 2; `seen` holds the skus before it."""
    sku = fields.text("sku", required=True)
    if sku in seen:
        raise fields.error("sku", f"the sku {sku!r} is repeated: skus are unique in a catalog")
    seen.add(sku)
    price = fields.amount("price", required=True)
    category = fields.text("category", required=True)
    title = fields.text("title", required=False)
    brand = fields.text("brand", required=False)
    tags = fields.tags()
    values = {name: fields.attribute(name, type_) for name, type_ in attributes.items()}
    return Item(sku, title, price, category, brand, tags, MappingProxyType(values))


class _Money:
    """Reads amounts in the catalog's currency: whole minor units, never rounded."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.places = decimals(currency)

    def read(self, text: str) -> int:
        """Raises ValueError with a message for people."""
        if text.startswith(("+", "-")):
            raise ValueError(f"{text!r} has a sign; amounts are never negative")
        try:
            return parse_amount(text, self.places)
        except ValueError as exc:  # BadLiteral, or more digits than int() accepts
            raise ValueError(f"{exc} ({self.currency} has {self.places} decimals)") from None


# --- JSON ------------------------------------------------------------------------------------


def parse_catalog_json(data: bytes, *, currency: str) -> Catalog:
    """Read a JSON catalog for a program in `currency` (already validated)."""
    document = load_object(data, "catalog")
    for key in document:
        if key not in _TOP_LEVEL:
            raise InputError(
                f"catalog.{key}", f"unknown key {key!r}; expected currency, attributes or items"
            )
    _check_currency(document.get("currency", _MISSING), currency)
    attributes = _declarations(document.get("attributes", _MISSING))
    raw_items = document.get("items", _MISSING)
    if raw_items is _MISSING:
        raise InputError("catalog.items", "items is required: a list of item objects")
    if not isinstance(raw_items, list):
        raise InputError(
            "catalog.items", f"expected a list of items, found {describe_json(raw_items)}"
        )
    money = _Money(currency)
    seen: set[str] = set()
    items = tuple(
        _json_item(raw, f"catalog.items[{i}]", attributes, money, seen)
        for i, raw in enumerate(raw_items)
    )
    return Catalog.of(currency, attributes, items)


def _check_currency(value: Any, currency: str) -> None:
    if value is _MISSING:
        return
    if not is_text(value) or value != currency:
        raise InputError(
            "catalog.currency",
            f"expected the program's currency {currency!r}, found {describe_json(value)}",
        )


def _declarations(value: Any) -> dict[str, Type]:
    if value is _MISSING:
        return {}
    if not isinstance(value, dict):
        raise InputError(
            "catalog.attributes",
            f"expected an object of name: type declarations, found {describe_json(value)}",
        )
    declared: dict[str, Type] = {}
    for name, type_value in value.items():
        field = f"catalog.attributes.{name}"
        _check_name(name, field)
        declared[name] = _attribute_type(type_value, field)
    return declared


def _json_item(
    raw: Any, field: str, attributes: Mapping[str, Type], money: _Money, seen: set[str]
) -> Item:
    if not isinstance(raw, dict):
        raise InputError(field, f"expected an item object, found {describe_json(raw)}")
    for key in raw:
        if key not in ITEM_FIELDS and key not in attributes:
            raise InputError(
                f"{field}.{key}", f"unknown key {key!r}: not an item field or a declared attribute"
            )
    return _item(_JsonFields(raw, field, money), attributes, seen)


class _JsonFields:
    """Typed JSON values: a value of the wrong JSON type is an error, never converted."""

    def __init__(self, raw: dict[str, Any], field: str, money: _Money) -> None:
        self.raw = raw
        self.field = field
        self.money = money

    def error(self, key: str, message: str) -> InputError:
        return InputError(f"{self.field}.{key}", message)

    def _value(self, key: str, *, required: bool) -> Any:
        """The value, or `_MISSING`; null is refused because a catalog says what it means."""
        value = self.raw.get(key, _MISSING)
        if value is _MISSING and required:
            raise self.error(key, f"{key} is required")
        if value is None:
            raise self.error(key, f"null is not allowed; leave {key} out to use its default")
        return value

    def text(self, key: str, *, required: bool) -> str:
        value = self._value(key, required=required)
        if value is _MISSING:
            return ""
        if not is_text(value):
            raise self.error(key, f"expected a string, found {describe_json(value)}")
        if required and not value:
            raise self.error(key, f"{key} must not be empty")
        return value

    def amount(self, key: str, *, required: bool) -> int:
        value = self._value(key, required=required)
        if value is _MISSING:
            return 0
        if is_text(value):
            text = value.strip(_SPACE)
        elif is_integer(value) or isinstance(value, str):  # an int, or a JSONNumber's text
            text = str(value)
        else:
            raise self.error(
                key,
                f'expected an amount, as a string like "19.90" or a number, found {describe_json(value)}',
            )
        try:
            return self.money.read(text)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def tags(self) -> frozenset[str]:
        value = self._value("tags", required=False)
        if value is _MISSING:
            return frozenset()
        if not isinstance(value, list):
            raise self.error("tags", f"expected a list of strings, found {describe_json(value)}")
        for i, tag in enumerate(value):
            if not is_text(tag):
                raise self.error(
                    "tags", f"expected a list of strings, found {describe_json(tag)} at index {i}"
                )
        return frozenset(value)

    def attribute(self, name: str, type_: Type) -> AttributeValue:
        value = self._value(name, required=False)
        if value is _MISSING:
            return ATTRIBUTE_DEFAULTS[type_]
        if type_ is Type.MONEY:
            return self.amount(name, required=False)
        if type_ is Type.STRING:
            return self.text(name, required=False)
        if type_ is Type.BOOL and isinstance(value, bool):
            return value
        if type_ is Type.INT and is_integer(value):
            return value
        expected = "true or false" if type_ is Type.BOOL else "an integer"
        raise self.error(
            name, f"expected {expected} for a {type_.value} attribute, found {describe_json(value)}"
        )


# --- CSV -------------------------------------------------------------------------------------


def parse_catalog_csv(data: bytes, *, currency: str) -> Catalog:
    """Read a CSV catalog; it has no currency of its own, so it is the program's."""
    rows = _csv_rows(decode_text(data, "catalog"))
    if not rows:
        raise InputError(
            "catalog.header", "the CSV catalog is empty; its first row must be the header"
        )
    header_line, header = rows[0]
    columns = _header(header, Where(line=header_line))
    attributes = {name: type_ for name, type_ in columns.items() if type_ is not None}
    money = _Money(currency)
    seen: set[str] = set()
    items = tuple(
        _csv_item(cells, f"catalog.items[{i}]", Where(line=line), columns, money, seen)
        for i, (line, cells) in enumerate(rows[1:])
    )
    return Catalog.of(currency, attributes, items)


def _csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """Every non-blank row with its first file line, cells trimmed. The whole file is parsed
    before any row is checked: a file that is not CSV is reported before its contents."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for cells in reader:
            trimmed = [cell.strip(_SPACE) for cell in cells]
            if trimmed not in ([], [""]):
                rows.append((line, trimmed))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(
            "catalog", f"not valid CSV: {exc}", where=Where(line=reader.line_num)
        ) from None
    return rows


def _header(cells: list[str], where: Where) -> dict[str, Type | None]:
    """Column name → attribute type (None for a built-in column), in column order."""
    columns: dict[str, Type | None] = {}
    for column in cells:
        name, type_ = _column(column, where)
        if name in columns:
            raise InputError(
                f"catalog.header.{column}", f"the column {name!r} is repeated", where=where
            )
        columns[name] = type_
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    if missing:
        raise InputError(
            "catalog.header",
            f"the header has no {', '.join(missing)} column (required)",
            where=where,
        )
    return columns


def _column(column: str, where: Where) -> tuple[str, Type | None]:
    field = f"catalog.header.{column}"
    raw_name, typed, raw_type = column.partition(":")
    name = raw_name.strip(_SPACE)
    if not typed:
        if name not in ITEM_FIELDS:
            raise InputError(
                field,
                f"unknown column {column!r}: built-in columns are {', '.join(ITEM_FIELDS)}; "
                "an attribute column is written name:type",
                where=where,
            )
        return name, None
    if name in ITEM_FIELDS:
        raise InputError(field, f"the built-in column {name!r} takes no type", where=where)
    _check_name(name, field, where)
    return name, _attribute_type(raw_type.strip(_SPACE), field, where)


def _csv_item(
    cells: list[str],
    field: str,
    where: Where,
    columns: Mapping[str, Type | None],
    money: _Money,
    seen: set[str],
) -> Item:
    if len(cells) != len(columns):
        raise InputError(
            field,
            f"expected {len(columns)} cells, as in the header, found {len(cells)}",
            where=where,
        )
    attributes = {name: type_ for name, type_ in columns.items() if type_ is not None}
    fields = _CsvFields(dict(zip(columns, cells)), field, where, money)
    return _item(fields, attributes, seen)


class _CsvFields:
    """Trimmed cells: an empty cell is a missing value, text is read by the column's type."""

    def __init__(self, cells: dict[str, str], field: str, where: Where, money: _Money) -> None:
        self.cells = cells
        self.field = field
        self.where = where
        self.money = money

    def error(self, key: str, message: str) -> InputError:
        return InputError(f"{self.field}.{key}", message, where=self.where)

    def _cell(self, key: str, *, required: bool) -> str:
        cell = self.cells.get(key, "")
        if required and not cell:
            raise self.error(key, f"{key} is required; the cell is empty")
        return cell

    def text(self, key: str, *, required: bool) -> str:
        return self._cell(key, required=required)

    def amount(self, key: str, *, required: bool) -> int:
        cell = self._cell(key, required=required)
        if not cell:
            return 0
        try:
            return self.money.read(cell)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def tags(self) -> frozenset[str]:
        parts = (part.strip(_SPACE) for part in self._cell("tags", required=False).split(";"))
        return frozenset(part for part in parts if part)

    def attribute(self, name: str, type_: Type) -> AttributeValue:
        cell = self._cell(name, required=False)
        if not cell:
            return ATTRIBUTE_DEFAULTS[type_]
        if type_ is Type.MONEY:
            return self.amount(name, required=False)
        if type_ is Type.BOOL:
            return self._bool(name, cell)
        if type_ is Type.INT:
            return self._int(name, cell)
        return cell

    def _bool(self, name: str, cell: str) -> bool:
        lowered = cell.lower()
        if lowered not in ("true", "false"):
            raise self.error(name, f"expected true or false for a bool attribute, found {cell!r}")
        return lowered == "true"

    def _int(self, name: str, cell: str) -> int:
        try:
            return parse_integer(cell)
        except ValueError:  # BadLiteral, or more digits than int() accepts
            raise self.error(
                name, f"expected an integer (an optional sign and digits), found {cell!r}"
            ) from None
