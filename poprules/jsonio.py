"""Strict JSON reading for catalogs and requests (spec 9.1).

Numbers stay exact: integers become `int`, every other number keeps its source text as a
`JSONNumber`, so `19.90` is never a float and `2.0` is not an integer. A repeated key, NaN or
Infinity, or text that is not UTF-8 is refused with the field the contract names.
"""

from __future__ import annotations

import json
from typing import Any

from poprules.errors import InputError


class JSONNumber(str):
    """The exact source text of a JSON number with a fraction or an exponent."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_text(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(what, f"the {what} is not UTF-8 text: {exc.reason} at byte {exc.start}")
    return text.removeprefix("\ufeff")


def load_pairs(data: bytes | str, what: str) -> Any:
    """Parse JSON keeping every object as its list of (key, value) pairs, in order."""
    text = decode_text(data, what) if isinstance(data, bytes) else data
    try:
        return json.loads(
            text,
            object_pairs_hook=Pairs,
            parse_float=JSONNumber,
            parse_constant=_refuse_constant,
        )
    except RecursionError:
        raise InputError(what, f"the {what} is nested too deeply") from None
    except ValueError as exc:
        raise InputError(what, f"the {what} is not valid JSON: {exc}") from None


class Pairs(list[tuple[str, Any]]):
    """A JSON object as written: its pairs in order, duplicates included."""


def load_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Parse a JSON document whose top level must be an object; a repeated key anywhere is
    the error `<what>.<key>`."""
    try:
        value = _objects(load_pairs(data, what), what)
    except RecursionError:
        raise InputError(what, f"the {what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise InputError(what, f"the {what} must be a JSON object")
    return value


def _objects(value: Any, what: str) -> Any:
    if isinstance(value, Pairs):
        out: dict[str, Any] = {}
        for key, item in value:
            if key in out:
                raise InputError(f"{what}.{key}", f"the key {key!r} is repeated")
            out[key] = _objects(item, what)
        return out
    if isinstance(value, list):
        return [_objects(item, what) for item in value]
    return value
