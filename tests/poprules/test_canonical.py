"""The canonical encoding is json's, whichever library writes it (poprules/canonical.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poprules import canonical

# Every kind of character JSON escapes or must not: controls, quotes, backslashes, DEL,
# U+2028/2029, astral planes (where UTF-16 and code-point order differ for sorting keys).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12) | st.sampled_from(
    ["", "\x00", "\x1f", '"', "\\", "\x7f", "\u2028", "\u2029", "\ue000", "\U0001f600",
     "\U0010ffff", "é", "€", "\ufeff"])
INTEGERS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
DOCUMENTS = st.recursive(
    st.none() | st.booleans() | INTEGERS | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=6),
    max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(TEXT, DOCUMENTS, max_size=6))
def test_the_fast_encoding_is_the_definitions_byte_for_byte(document: dict[str, Any]) -> None:
    assert canonical.encode(document) == canonical.encode_json(document)


def test_the_definition_is_sorted_compact_utf8() -> None:
    document = {"b": [1, "é\n"], "a": {"z": None, "\U0001f600": True, "\ue000": False}}
    expected = '{"a":{"z":null,"\ue000":false,"\U0001f600":true},"b":[1,"é\\n"]}'
    assert canonical.encode(document) == expected.encode("utf-8")
    assert json.loads(canonical.encode(document)) == document


def test_an_integer_beyond_64_bits_still_encodes_as_digits() -> None:
    assert canonical.encode({"n": 2**70, "m": -(2**70)}) == (
        b'{"m":-1180591620717411303424,"n":1180591620717411303424}')


def test_what_is_not_json_is_refused() -> None:
    with pytest.raises(TypeError):
        canonical.encode({"n": object()})


def test_orjson_is_what_cpython_hosts_use() -> None:
    """The speed-up is installed with the project (pyproject.toml), so the fast path is the
    one the tests above compare."""
    assert canonical.encode is not canonical.encode_json
