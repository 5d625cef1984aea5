"""Signatures over release hashes, for the publish step and for anyone who checks one.

What is signed is not the bare hash but `b"poprules-release/1\\n" + release_hash` (ASCII), so
a signature made for a release can never pass for one over another kind of document the
same key may sign later (redemption snapshots, customer tokens). A PoP verifies with the
public key that `GET /v1/keys` lists under the signature's `key_id`:

    {"key_id": "3f9a0c2e5b7d1e48", "signature": "<128 hex digits>"}
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from sqlalchemy import select

from control_plane.context import control_plane, session
from control_plane.storage.models import SigningKey

RELEASE_CONTEXT = b"poprules-release/1\n"
# Every other kind of document the key signs has its own context, so no signature passes for
# another kind's: redemption snapshots and customer tokens.
SNAPSHOT_CONTEXT = b"poprules-redemptions/1\n"
CUSTOMER_CONTEXT = b"poprules-customer/1\n"
_RELEASE_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def signed_message(release_hash: str) -> bytes:
    """The bytes a release signature covers."""
    if not _RELEASE_HASH.fullmatch(release_hash):
        raise ValueError(f"not a release hash (sha256: and 64 hex digits): {release_hash!r}")
    return RELEASE_CONTEXT + release_hash.encode("ascii")


def sign(release_hash: str) -> dict[str, str]:
    """Sign a release hash with the current key (inside a request or app context)."""
    return _sign(signed_message(release_hash))


def sign_document(context: bytes, document: bytes) -> dict[str, str]:
    """Sign `context + document` (a snapshot's or customer token's bytes) with the current
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


def verify(release_hash: str, signed: Mapping[str, str]) -> bool:
    """Whether `signed` (as `sign` returns it) is a good signature of the release hash by a
    key of this control plane's keyring, current or retired."""
    row = session().scalar(select(SigningKey).where(SigningKey.key_id == signed.get("key_id")))
    return row is not None and verify_with(row.public_key, release_hash,
                                           signed.get("signature", ""))


def verify_with(public_key: str, release_hash: str, signature: str) -> bool:
    """The check a PoP makes, given the hex public key from the keyring it pinned."""
    try:
        VerifyKey(bytes.fromhex(public_key)).verify(signed_message(release_hash),
                                                    bytes.fromhex(signature))
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
