"""Issuing customer tokens: the control plane's signed word on a shopper's attributes, which
a PoP checks offline (the format: poprules/customer_token.py, docs/customer_tokens.md).

A token is signed with the current key; PoPs take the keyring from their bundle's manifest, so
a key rotation reaches them with the next release published after it. Its `sub` and `ref` are
keyed hashes (coupon_key.customer_hash under the merchant's customer key), not plain SHA-256:
a token's payload is readable by whoever holds it, and a plain hash of a guessable id could be
confirmed by hashing guesses. The wallets key customers by the same hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from control_plane import audit, signing
from control_plane.context import control_plane
from control_plane.coupon_key import customer_hash, customer_key
from control_plane.wire import format_time
from poprules.customer_token import assemble, encode_payload, new_payload

DEFAULT_TTL = 900
MIN_TTL = 60
MAX_TTL = 86_400


@dataclass(frozen=True)
class Issued:
    token: str
    expires_at: datetime


def issue(session: Session, *, merchant_id: int, customer: dict[str, Any], subject: str,
          referrer: str | None, ttl: int, actor_token_id: int) -> Issued:
    """Sign a token for `customer` (as `check_customer` wrote it) and record its issue: the
    token id and hashes only, never the token, which is a bearer credential until it
    expires. The caller commits."""
    issued_at = int(datetime.now(UTC).timestamp())
    payload = new_payload(merchant_id=merchant_id, subject=subject, referrer=referrer,
                          customer=customer, issued_at=issued_at, ttl=ttl)
    key = customer_key(control_plane().settings.key_dir, merchant_id)
    payload["sub"] = customer_hash(key, subject)
    payload["ref"] = None if referrer is None else customer_hash(key, referrer)
    document = encode_payload(payload)
    signed = signing.sign_document(signing.CUSTOMER_CONTEXT, document)
    token = assemble(document, signed["key_id"], bytes.fromhex(signed["signature"]))
    expires_at = datetime.fromtimestamp(payload["exp"], UTC)
    audit.record(session, audit.CUSTOMER_TOKEN_ISSUED, merchant_id=merchant_id,
                 actor_token_id=actor_token_id, jti=payload["jti"], key_id=signed["key_id"],
                 sub=payload["sub"], ref=payload["ref"], expires_at=format_time(expires_at))
    return Issued(token, expires_at)
