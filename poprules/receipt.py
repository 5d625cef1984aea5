"""The receipt: what a PoP signs for every checkout and refund, and the control plane books.

One definition for both sides (docs/receipts.md). A receipt is a JSON object written in one
canonical form — keys sorted, no spaces, UTF-8 — and those exact bytes (the `body`) are what
is signed, chained and stored, so a verifier never re-serialises anything:

- `signature` = Ed25519 by the PoP's enrolled key over `CONTEXT + body`;
- `prev` = the SHA-256 (hex) of the PoP's previous receipt body (`GENESIS` for its first), and
  `seq` counts from 1, so a missing, reordered or forked receipt shows as a broken link;
- `id` = `<pop id>-<seq>`: unique per merchant, the key a replay is recognised by.

Standard library only: the Cloudflare worker imports it under Pyodide.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from poprules import canonical

FORMAT = "poprules-receipt/1"
CONTEXT = b"poprules-receipt/1\n"
GENESIS = "0" * 64
KINDS = ("sale", "refund")
# Every receipt has these; a sale adds release, request, quote, quote_id, customer, claim;
# a refund adds refund_of, lines and reversal (docs/receipts.md).
COMMON = ("format", "kind", "id", "merchant", "pop", "seq", "prev", "at")


class ReceiptError(ValueError):
    """A receipt that is not one: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def receipt_id(pop_id: int, seq: int) -> str:
    return f"{pop_id}-{seq}"


def encode(fields: dict[str, Any]) -> bytes:
    """The canonical body of a receipt."""
    return canonical.encode(fields)


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def statement(body: bytes) -> bytes:
    """The bytes the PoP's signature covers."""
    return CONTEXT + body


def decode(body: bytes) -> dict[str, Any]:
    """The receipt of a body, checked for shape (not for signature or chain): it must be in
    canonical form, so two encodings of one receipt can never both be accepted."""
    try:
        fields = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReceiptError("body", f"not a JSON receipt: {exc}") from None
    if not isinstance(fields, dict):
        raise ReceiptError("body", "a receipt is a JSON object")
    if encode(fields) != body:
        raise ReceiptError("body", "not in canonical form (sorted keys, no spaces, UTF-8)")
    for name in COMMON:
        if name not in fields:
            raise ReceiptError(name, "required")
    if fields["format"] != FORMAT:
        raise ReceiptError("format", f"expected {FORMAT}")
    if fields["kind"] not in KINDS:
        raise ReceiptError("kind", f"one of: {', '.join(KINDS)}")
    for name in ("merchant", "pop", "seq", "at"):
        if type(fields[name]) is not int or fields[name] < (1 if name != "at" else 0):
            raise ReceiptError(name, "a whole number")
    prev = fields["prev"]
    if not isinstance(prev, str) or len(prev) != 64 or prev.strip("0123456789abcdef"):
        raise ReceiptError("prev", "64 lower-case hex digits")
    if fields["id"] != receipt_id(fields["pop"], fields["seq"]):
        raise ReceiptError("id", "must be <pop>-<seq>")
    return fields
