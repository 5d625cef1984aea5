"""Reading requests and writing times, the same way in every endpoint: bodies are strict
JSON objects, times are RFC 3339 in UTC with microseconds (so an event's own `at` used as a
filter finds that event again)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from control_plane.errors import invalid
from poprules.errors import InputError
from poprules.jsonio import load_object

MAX_ID = 2**31 - 1  # ids and numbers are INTEGER columns: 32 bits on PostgreSQL


def read_body() -> bytes:
    """The whole body, or 413. A body sent without a length (chunked) is cut by Werkzeug at
    MAX_CONTENT_LENGTH without a word, so one that fills the limit is probed for one more
    byte: a truncated upload must never pass for a complete one. (A declared length over the
    limit never gets this far: see `app._refuse_oversized`.)"""
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit \
            and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return data


def json_body(allowed: frozenset[str]) -> dict[str, Any]:
    """The request's JSON object; a repeated or unknown key is refused by name, so a typo
    never passes as a default."""
    try:
        body = load_object(read_body(), "body")
    except InputError as exc:
        raise invalid(exc.field or "body", exc.message) from None
    for key in body:
        if key not in allowed:
            raise invalid(key, f"unknown field; expected one of: {', '.join(sorted(allowed))}")
    return body


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(field: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(field, f"not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        raise invalid(field, f"give a time zone (Z for UTC): {text!r}")
    return moment.astimezone(UTC)


def query_int(field: str, default: int, *, low: int, high: int) -> int:
    text = request.args.get(field)
    if text is None:
        return default
    if not (text.isascii() and text.isdecimal()) or not low <= int(text) <= high:
        raise invalid(field, f"must be a whole number from {low} to {high}, not {text!r}")
    return int(text)
