"""Canonical JSON: the one encoding every signed or hashed document of poprules uses —
receipts, a quote's signature, customer tokens, redemption snapshots (docs/receipts.md).

Keys sorted by code point, no spaces, UTF-8 text (not `\\u` escapes beyond what JSON
requires), integers as digits. Canonical documents hold no floats: amounts are integers of
minor units and decimal literals stay strings (`poprules.jsonio.JSONNumber`).

orjson writes exactly these bytes for such documents about ten times faster than `json`
(tests/poprules/test_canonical.py compares the two on random documents), which is a third of
what a PoP spends on a quote; `json` is the definition and the fallback where orjson is not
installed (the Worker on Pyodide) or cannot encode a value (an integer beyond 64 bits).
"""

from __future__ import annotations

import json
from typing import Any


def encode_json(value: Any) -> bytes:
    """The canonical encoding, by the standard library: the definition."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


try:
    import orjson
except ImportError:  # pragma: no cover - the Worker's runtime
    encode = encode_json
else:
    _SORTED = orjson.OPT_SORT_KEYS

    def encode(value: Any) -> bytes:
        """The canonical encoding of `value` (see the module's docstring)."""
        try:
            return orjson.dumps(value, option=_SORTED)
        except orjson.JSONEncodeError:
            return encode_json(value)  # raises as json does, or encodes a big integer
