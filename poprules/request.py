"""The simulation request (spec section 8), read strictly into immutable values.

Every host evaluates the same `Request`, so this module is the one place where a JSON
request becomes one; it uses only the standard library because the Cloudflare worker imports
it under Pyodide. Fields are checked in the order of spec 9.3 item 5 and the first problem is
raised at once, naming the field: a bad request never gets a partial quote.
"""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, NamedTuple, TypeGuard

from poprules.errors import InputError
from poprules.jsonio import JSONNumber, load_object
from poprules.literals import parse_time

MAX_LINES = 500
PREFERENCES = ("wallet", "instant")
_SHOWN = 40  # characters of a bad string value quoted back in a message


class Line(NamedTuple):
    """A tuple rather than a dataclass: a PoP builds hundreds per request, and a frozen
    dataclass costs several times more to construct."""

    sku: str
    qty: int


_new_line = tuple.__new__


@dataclass(frozen=True)
class Customer:
    tier: str
    orders: int
    tags: frozenset[str]
    referred: bool


@dataclass(frozen=True)
class Request:
    lines: tuple[Line, ...]
    channel: str
    fulfillment: str
    pop: str
    coupons: tuple[str, ...]
    spent_coupons: tuple[str, ...]
    customer: Customer | None  # None: `customer.known` is false
    prefer: str  # one of PREFERENCES
    at: int  # Unix seconds


def load_request(raw: bytes, *, skus: Container[str], zone: tzinfo) -> Request:
    """Read a request file; a repeated key anywhere is `request.<key>` (spec 9.3)."""
    return parse_request(load_object(raw, "request"), skus=skus, zone=zone)


def parse_request(data: dict[str, Any], *, skus: Container[str], zone: tzinfo) -> Request:
    """Check an already-decoded request. Local variables, not constructor arguments, fix the
    check order, because which error is reported first is part of the contract."""
    lines = _lines(data.get("lines"), skus)
    channel = _text(data.get("channel"), "channel")
    fulfillment = _text(data.get("fulfillment"), "fulfillment")
    pop = _text(data.get("pop"), "pop")
    coupons = _texts(data.get("coupons"), "coupons")
    spent_coupons = _texts(data.get("spent_coupons"), "spent_coupons")
    customer = _customer(data.get("customer"))
    prefer = _prefer(data.get("prefer"))
    at = _at(data.get("at"), zone)
    return Request(lines, channel, fulfillment, pop, coupons, spent_coupons, customer, prefer, at)


def describe_json(value: Any) -> str:
    """Name a decoded JSON value the way its author wrote it, for "found ..." in messages."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, JSONNumber)):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "..."
        return f"the string {json.dumps(shown, ensure_ascii=False)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_text(value: Any) -> TypeGuard[str]:
    """A JSON string: `JSONNumber` subclasses `str` but is a number (spec 9.1)."""
    return isinstance(value, str) and not isinstance(value, JSONNumber)


def is_integer(value: Any) -> TypeGuard[int]:
    """A JSON integer: Python's `bool` subclasses `int` but `true` is not a number."""
    return isinstance(value, int) and not isinstance(value, bool)


def _lines(value: Any, skus: Container[str]) -> tuple[Line, ...]:
    if value is None:
        raise InputError("lines", 'lines is required: a list of {"sku", "qty"} objects')
    if not isinstance(value, list):
        raise InputError("lines", f"expected a list of lines, found {describe_json(value)}")
    if len(value) > MAX_LINES:
        raise InputError("lines", f"at most {MAX_LINES} lines are allowed, found {len(value)}")
    lines: list[Line] = []
    append = lines.append
    for i, line in enumerate(value):
        # The common case checked inline (exact types: a JSONNumber is a str subclass and a
        # bool an int subclass) and built without the named tuple's Python-level __new__;
        # anything else takes the path that names the problem.
        if type(line) is dict:
            sku, qty = line.get("sku"), line.get("qty")
            if type(sku) is str and type(qty) is int and qty >= 1 and sku in skus:
                append(_new_line(Line, (sku, qty)))
                continue
        append(_line(line, f"lines[{i}]", skus))
    return tuple(lines)


def _line(value: Any, field: str, skus: Container[str]) -> Line:
    if not isinstance(value, dict):
        raise InputError(
            field, f'expected a line object {{"sku", "qty"}}, found {describe_json(value)}'
        )
    sku = value.get("sku")
    if not is_text(sku):
        raise InputError(
            f"{field}.sku", f"expected the sku as a string, found {describe_json(sku)}"
        )
    if sku not in skus:
        raise InputError(
            f"{field}.sku", f"the sku {json.dumps(sku, ensure_ascii=False)} is not in the catalog"
        )
    qty = value.get("qty")
    if not is_integer(qty) or qty < 1:
        raise InputError(
            f"{field}.qty", f"expected an integer of at least 1, found {describe_json(qty)}"
        )
    return Line(sku, qty)


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not is_text(value):
        raise InputError(field, f"expected a string, found {describe_json(value)}")
    return value


def _texts(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InputError(field, f"expected a list of strings, found {describe_json(value)}")
    for i, item in enumerate(value):
        if not is_text(item):
            raise InputError(
                field, f"expected a list of strings, found {describe_json(item)} at index {i}"
            )
    return tuple(value)


def _customer(value: Any) -> Customer | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError("customer", f"expected an object, found {describe_json(value)}")
    tier = _text(value.get("tier"), "customer.tier")
    orders = _orders(value.get("orders"))
    tags = frozenset(_texts(value.get("tags"), "customer.tags"))
    referred = _flag(value.get("referred"), "customer.referred")
    return Customer(tier, orders, tags, referred)


def _orders(value: Any) -> int:
    if value is None:
        return 0
    if not is_integer(value) or value < 0:
        raise InputError(
            "customer.orders", f"expected an integer of at least 0, found {describe_json(value)}"
        )
    return value


def _flag(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InputError(field, f"expected true or false, found {describe_json(value)}")
    return value


def _prefer(value: Any) -> str:
    if value is None:
        return "wallet"
    if not is_text(value) or value not in PREFERENCES:
        raise InputError("prefer", f'expected "wallet" or "instant", found {describe_json(value)}')
    return value


def _at(value: Any, zone: tzinfo) -> int:
    if value is None:
        raise InputError("at", "at is required: the time of the quote, like 2026-07-04T10:00:00Z")
    if not is_text(value):
        raise InputError("at", f"expected a time string, found {describe_json(value)}")
    try:
        return parse_time(value, zone)
    except (ValueError, OverflowError) as exc:
        # BadLiteral is a ValueError; years at the edge of the calendar overflow datetime.
        raise InputError("at", str(exc)) from None
