"""The receipt format: one canonical body per receipt, and a clear field for every defect."""

from __future__ import annotations

from typing import Any

import pytest

from poprules import receipt


def fields(**overrides: Any) -> dict[str, Any]:
    return {"format": receipt.FORMAT, "kind": "sale", "id": "3-1", "merchant": 1, "pop": 3,
            "seq": 1, "prev": receipt.GENESIS, "at": 1_780_000_000, "note": "café", **overrides}


def test_round_trip_is_canonical_and_stable() -> None:
    body = receipt.encode(fields())
    assert body == receipt.encode(dict(reversed(list(fields().items()))))  # key order
    assert b" " not in body and "café".encode() in body  # no spaces, UTF-8 as is
    assert receipt.decode(body) == fields()
    assert receipt.digest(body) == receipt.digest(receipt.encode(fields()))
    assert receipt.statement(body) == b"poprules-receipt/1\n" + body


@pytest.mark.parametrize(("body", "field"), [
    (b"\xff", "body"),
    (b"[]", "body"),
    (b'{"format": "poprules-receipt/1"}', "body"),  # not canonical (a space)
    (receipt.encode({k: v for k, v in fields().items() if k != "seq"}), "seq"),
    (receipt.encode(fields(format="other/1")), "format"),
    (receipt.encode(fields(kind="gift")), "kind"),
    (receipt.encode(fields(seq=0)), "seq"),
    (receipt.encode(fields(seq=True)), "seq"),
    (receipt.encode(fields(prev="ABC")), "prev"),
    (receipt.encode(fields(prev="g" * 64)), "prev"),
    (receipt.encode(fields(id="3-2")), "id"),
])
def test_defects_name_their_field(body: bytes, field: str) -> None:
    with pytest.raises(receipt.ReceiptError) as caught:
        receipt.decode(body)
    assert caught.value.field == field
