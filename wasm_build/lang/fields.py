"""Reading typed values out of a program's node tree, with the error the spec asks for.

Each reader takes the node and the contract's `field` name, so every refusal names where it
is; `rule` is attached by the caller that knows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

from poprules.errors import InputError, Where
from poprules.literals import (
    BadLiteral,
    parse_amount,
    parse_duration,
    parse_integer,
    parse_percent,
    parse_time,
)
from wasm_build.lang.source import Flag, Map, Node, Seq, Text

ID = re.compile(r"[a-z0-9_-]{1,64}")


def where(node: Node | None) -> Where | None:
    return None if node is None else node.where


def describe(node: Node | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, Flag):
        return f"the boolean {str(node.value).lower()}"
    if isinstance(node, Map):
        return "a mapping"
    if isinstance(node, Seq):
        return "a list"
    return repr(node.text)


def fail(field: str, message: str, node: Node | None) -> InputError:
    return InputError(field, message, where=where(node))


@contextmanager
def within(node: Node) -> Iterator[None]:
    """A value that is missing has no place in the file: point its error at the mapping
    that lacks it, so a reader can still find the line."""
    try:
        yield
    except InputError as exc:
        if exc.where is None:
            exc.where = node.where
        raise


def text(node: Node | None, field: str, what: str = "text") -> str:
    """Text where text is expected: an unquoted number is its source text (`id: 404`)."""
    if not isinstance(node, Text):
        raise fail(field, f"{field} must be {what}, not {describe(node)}", node)
    return node.text


def mapping(node: Node | None, field: str) -> Map:
    if not isinstance(node, Map):
        raise fail(field, f"{field} must be a mapping, not {describe(node)}", node)
    return node


def sequence(node: Node | None, field: str) -> Seq:
    if not isinstance(node, Seq):
        raise fail(field, f"{field} must be a list, not {describe(node)}", node)
    return node


def only_keys(node: Map, allowed: tuple[str, ...], prefix: str, whole: str = "") -> None:
    """Refuse the first key (in file order) that the mapping may not have. An empty key
    (`"": x`, `~: x`) has no name to report, so the field is the mapping's own: `whole`,
    else `prefix`."""
    for key in node.items:
        if key not in allowed:
            if not key:
                field = whole or prefix
            else:
                field = f"{prefix}.{key}" if prefix else key
            raise fail(field, f"unknown key {key!r}; expected one of {', '.join(allowed)}",
                       node.keys[key])


def identifier(node: Node | None, field: str) -> str:
    value = text(node, field)
    if ID.fullmatch(value) is None:
        raise fail(field, f"{value!r} must be 1-64 characters from a-z, 0-9, - and _", node)
    return value


def integer(node: Node | None, field: str, minimum: int | None = None) -> int:
    """Integers are unquoted: an optional sign and digits (spec 9.1)."""
    if not isinstance(node, Text) or node.quoted:
        raise fail(field, f"{field} must be an unquoted integer, not {describe(node)}", node)
    try:
        value = parse_integer(node.text)
    except BadLiteral as exc:
        raise fail(field, str(exc), node) from None
    if minimum is not None and value < minimum:
        raise fail(field, f"{field} must be at least {minimum}, not {value}", node)
    return value


def amount(node: Node | None, field: str, places: int) -> int:
    """An amount, unquoted or quoted (spaces around a quoted one are ignored)."""
    if not isinstance(node, Text):
        raise fail(field, f"{field} must be an amount such as 5.00, not {describe(node)}", node)
    try:
        return parse_amount(node.text.strip() if node.quoted else node.text, places)
    except BadLiteral as exc:
        raise fail(field, str(exc), node) from None


def percent(node: Text, field: str) -> int:
    try:
        ppm = parse_percent(node.text.strip() if node.quoted else node.text)
    except BadLiteral as exc:
        raise fail(field, str(exc), node) from None
    if ppm > 1_000_000:
        raise fail(field, f"{node.text} is more than 100%", node)
    return ppm


def duration(node: Node | None, field: str) -> int:
    value = text(node, field, "a duration such as 30d")
    try:
        return parse_duration(value.strip())
    except BadLiteral as exc:
        raise fail(field, str(exc), node) from None


def instant(node: Node | None, field: str, zone: ZoneInfo) -> int:
    value = text(node, field, "a time such as 2026-07-01T09:00")
    try:
        return parse_time(value.strip(), zone)
    except BadLiteral as exc:
        raise fail(field, str(exc), node) from None
