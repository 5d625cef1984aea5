"""Signatures by the control plane's key: releases, redemption snapshots, customer tokens.

A release signature covers `poprules.bundle.release_statement(merchant, number, hash)`, the
bytes `poprules-release/1\n<merchant>\n<number>\n<release hash>`; each other kind of document
has its own context prefix, so no signature passes for another kind's. A PoP verifies with
the public key that `GET /v1/keys` lists under the signature's `key_id`:

    {"key_id": "3f9a0c2e5b7d1e48", "signature": "<128 hex digits>"}
"""

from __future__ import annotations

from collections.abc import Mapping

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from sqlalchemy import select

from control_plane.context import control_plane, session
from control_plane.storage.models import SigningKey
from poprules.bundle import release_statement

SNAPSHOT_CONTEXT = b"poprules-redemptions/1\n"
CUSTOMER_CONTEXT = b"poprules-customer/1\n"


def sign(merchant_id: int, number: int, release_hash: str) -> dict[str, str]:
    """Sign a merchant's release with the current key (inside a request or app context)."""
    return _sign(release_statement(merchant_id, number, release_hash))


def verify(merchant_id: int, number: int, release_hash: str, signed: Mapping[str, str]) -> bool:
    """Whether `signed` (as `sign` returns it) is a good signature of the release by a key of
    this control plane's keyring, current or retired."""
    row = session().scalar(select(SigningKey).where(SigningKey.key_id == signed.get("key_id")))
    return row is not None and verify_with(row.public_key, merchant_id, number, release_hash,
                                           signed.get("signature", ""))


def verify_with(public_key: str, merchant_id: int, number: int, release_hash: str,
                signature: str) -> bool:
    """The check a PoP makes, given the hex public key from the keyring it pinned."""
    try:
        message = release_statement(merchant_id, number, release_hash)
        VerifyKey(bytes.fromhex(public_key)).verify(message, bytes.fromhex(signature))
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def sign_document(context: bytes, document: bytes) -> dict[str, str]:
    """Sign `context + document` (a snapshot's or a customer token's bytes) with the current
    key; `context` is one of the *_CONTEXT constants."""
    if context not in (SNAPSHOT_CONTEXT, CUSTOMER_CONTEXT):
        raise ValueError(f"unknown signing context {context!r}")
    return _sign(context + document)


def verify_document_with(public_key: str, context: bytes, document: bytes,
                         signature: str) -> bool:
    """A PoP's check of a signed document, given the pinned hex public key."""
    try:
        VerifyKey(bytes.fromhex(public_key)).verify(context + document, bytes.fromhex(signature))
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def _sign(message: bytes) -> dict[str, str]:
    plane = control_plane()
    key_id = plane.keyring.current(session()).key_id
    signature = plane.keyring.private(key_id).sign(message).signature
    return {"key_id": key_id, "signature": signature.hex()}
