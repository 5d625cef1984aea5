"""Customer tokens: the one definition of their format, shared by the control plane that
issues them and the PoPs that check them (docs/customer_tokens.md).

What a browser says about its shopper is not trusted; a customer token is the control plane's
signed word on the shopper's tier, prior orders, tags and referrer, which a PoP checks offline
against the public keys its bundle carries. This module uses only the standard library (PyNaCl
is imported when a signature is checked), so every host, the Cloudflare worker included, can
import it.

    <base64url(payload)>.<key id>.<base64url(signature)>

The payload is canonical JSON (keys sorted, no spaces, UTF-8); the signature is Ed25519 over
`CONTEXT + payload`, so it can never pass for a signature over a release or a snapshot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any

from poprules import canonical
from poprules.errors import InputError
from poprules.jsonio import load_object
from poprules.request import describe_json, is_integer, is_text

VERSION = 1
# Equal to control_plane.signing.CUSTOMER_CONTEXT (a test holds them together); spelled out
# here because a PoP must not import the control plane.
CONTEXT = b"poprules-customer/1\n"

# Bounds that keep the longest possible token (every text of 4-byte characters) under
# MAX_TOKEN_LENGTH, so a token always fits in a header or a cookie.
TIER_LIMIT = 64
TAG_LIMIT = 64
TAGS_LIMIT = 20
ORDERS_LIMIT = 2**53 - 1  # exact in every JSON reader, a browser's included
ID_LIMIT = 200  # characters of a subject or referrer id, which go in hashed
MAX_TOKEN_LENGTH = 8192

# Why a token is refused: `CustomerTokenError.reason`.
MALFORMED = "malformed"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
WRONG_MERCHANT = "wrong_merchant"
EXPIRED = "expired"

CUSTOMER_FIELDS = ("tier", "orders", "tags", "referred")
PAYLOAD_FIELDS = frozenset({"v", "merchant", "sub", "ref", "customer", "iat", "exp", "jti"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_JTI = re.compile(r"[0-9a-f]{32}")


class CustomerTokenError(Exception):
    """A token a PoP must not honour. `reason` is one of MALFORMED, UNKNOWN_KEY,
    BAD_SIGNATURE, WRONG_MERCHANT or EXPIRED; the message says what exactly."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def check_customer(value: Any) -> dict[str, Any]:
    """The customer attributes a token may carry, checked as a simulation request's
    `customer` is (spec section 8), with the same defaults, and written out in full: every
    field present, tags sorted and de-duplicated (a set, as a request reads them). Raises
    InputError naming the field (`customer.tier`, ...)."""
    if not isinstance(value, dict):
        raise InputError("customer", f"expected an object, found {describe_json(value)}")
    for key in value:
        if key not in CUSTOMER_FIELDS:
            raise InputError(f"customer.{key}", "unknown field; expected one of: "
                             + ", ".join(CUSTOMER_FIELDS))
    given = {k: v for k, v in value.items() if v is not None}  # null: the default (spec 8)
    return {"tier": _tier(given.get("tier", "")), "orders": _orders(given.get("orders", 0)),
            "tags": _tags(given.get("tags", [])),
            "referred": _referred(given.get("referred", False))}


def _is_unicode(text: str) -> bool:
    """JSON can spell a lone surrogate (`"\\ud800"`), which no UTF-8 payload can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_id(field: str, value: Any) -> str:
    """A shop's opaque id of a shopper or referrer, before it is hashed."""
    if not is_text(value) or not 1 <= len(value) <= ID_LIMIT or not _is_unicode(value):
        raise InputError(field, f"expected a string of 1 to {ID_LIMIT} characters, found "
                         f"{describe_json(value)}")
    return value


def _tier(value: Any) -> str:
    if not is_text(value) or len(value) > TIER_LIMIT or not _is_unicode(value):
        raise InputError("customer.tier", f"expected a string of at most {TIER_LIMIT} "
                         f"characters, found {describe_json(value)}")
    return value


def _orders(value: Any) -> int:
    if not is_integer(value) or not 0 <= value <= ORDERS_LIMIT:
        raise InputError("customer.orders", f"expected an integer from 0 to {ORDERS_LIMIT}, "
                         f"found {describe_json(value)}")
    return value


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > TAGS_LIMIT:
        raise InputError("customer.tags", f"expected a list of at most {TAGS_LIMIT} strings, "
                         f"found {describe_json(value)}")
    for i, tag in enumerate(value):
        if not is_text(tag) or len(tag) > TAG_LIMIT or not _is_unicode(tag):
            raise InputError(f"customer.tags[{i}]", f"expected a string of at most {TAG_LIMIT} "
                             f"characters, found {describe_json(tag)}")
    return sorted(set(value))


def _referred(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError("customer.referred", f"expected true or false, found "
                         f"{describe_json(value)}")
    return value


def id_hash(opaque_id: str) -> str:
    """What a token carries instead of a customer or referrer id: its SHA-256, hex."""
    return hashlib.sha256(opaque_id.encode("utf-8")).hexdigest()


def new_payload(*, merchant_id: int, subject: str, referrer: str | None,
                customer: dict[str, Any], issued_at: int, ttl: int) -> dict[str, Any]:
    """The claims of a new token; `customer` as `check_customer` returned it, and the ids in
    clear (only their hashes go in)."""
    return {"v": VERSION, "merchant": merchant_id, "sub": id_hash(subject),
            "ref": None if referrer is None else id_hash(referrer), "customer": customer,
            "iat": issued_at, "exp": issued_at + ttl, "jti": secrets.token_hex(16)}


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The canonical bytes the signature covers."""
    return canonical.encode(payload)


def assemble(payload: bytes, key_id: str, signature: bytes) -> str:
    """The token, from the encoded payload and the signature over CONTEXT + payload."""
    return f"{_b64encode(payload)}.{key_id}.{_b64encode(signature)}"


def verify_customer_token(token: str, keyring: Mapping[str, str], now: int,
                          merchant_id: int) -> dict[str, Any]:
    """The payload of a token that this merchant's shopper may be quoted with at `now` (Unix
    seconds), or CustomerTokenError. `keyring` maps key id to hex public key: the bundle
    manifest's `customer_keys` (a malformed key there is the PoP's fault: ValueError). The
    signature is checked before anything in the payload is read."""
    payload_bytes, key_id, signature = _split(token)
    public_key = keyring.get(key_id)
    if public_key is None:
        raise CustomerTokenError(UNKNOWN_KEY, f"the key {key_id} is not in this PoP's keyring")
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(bytes.fromhex(public_key)).verify(CONTEXT + payload_bytes, signature)
    except BadSignatureError:
        raise CustomerTokenError(BAD_SIGNATURE, f"the signature does not match the payload "
                                 f"under key {key_id}") from None
    payload = _payload(payload_bytes)
    if payload["merchant"] != merchant_id:
        raise CustomerTokenError(WRONG_MERCHANT, f"the token is for merchant "
                                 f"{payload['merchant']}, not {merchant_id}")
    if now >= payload["exp"]:
        raise CustomerTokenError(EXPIRED, f"the token expired at {payload['exp']} (now {now})")
    return payload


def _split(token: Any) -> tuple[bytes, str, bytes]:
    if not is_text(token) or len(token) > MAX_TOKEN_LENGTH:
        raise CustomerTokenError(MALFORMED, f"expected a string of at most {MAX_TOKEN_LENGTH} "
                                 "characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise CustomerTokenError(MALFORMED, "expected <payload>.<key id>.<signature>")
    payload, key_id, signature = parts
    if not _KEY_ID.fullmatch(key_id):
        raise CustomerTokenError(MALFORMED, "the key id is not 16 lowercase hex digits")
    signature_bytes = _b64decode(signature, "signature")
    if len(signature_bytes) != 64:
        raise CustomerTokenError(MALFORMED, "the signature is not 64 bytes")
    return _b64decode(payload, "payload"), key_id, signature_bytes


def _payload(data: bytes) -> dict[str, Any]:
    """The signed payload, checked in full: a well-signed token that a newer or buggy issuer
    wrote differently is still refused rather than half-understood."""
    try:
        payload = load_object(data, "payload")
    except InputError as exc:
        raise CustomerTokenError(MALFORMED, exc.message) from None
    if set(payload) != PAYLOAD_FIELDS:
        raise CustomerTokenError(MALFORMED, "the payload's fields are not: "
                                 + ", ".join(sorted(PAYLOAD_FIELDS)))
    if not is_integer(payload["v"]) or payload["v"] != VERSION:
        raise CustomerTokenError(MALFORMED, f"unsupported token version {payload['v']!r}")
    sub, ref, jti = payload["sub"], payload["ref"], payload["jti"]
    if not all(is_integer(payload[k]) for k in ("merchant", "iat", "exp")) \
            or not is_text(sub) or not _DIGEST.fullmatch(sub) \
            or not (ref is None or is_text(ref) and _DIGEST.fullmatch(ref)) \
            or not is_text(jti) or not _JTI.fullmatch(jti) or payload["iat"] >= payload["exp"]:
        raise CustomerTokenError(MALFORMED, "a field of the payload has the wrong form")
    try:
        customer = check_customer(payload["customer"])
    except InputError as exc:
        raise CustomerTokenError(MALFORMED, f"{exc.field}: {exc.message}") from None
    if customer != payload["customer"] or customer["referred"] != (ref is not None):
        raise CustomerTokenError(MALFORMED, "the customer is not written as an issuer writes it")
    return payload


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str, part: str) -> bytes:
    """Strict: the alphabet, no padding, and the one encoding of the bytes (no stray bits),
    so a token has exactly one spelling."""
    if not _SEGMENT.fullmatch(text) or len(text) % 4 == 1:
        raise CustomerTokenError(MALFORMED, f"the {part} is not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CustomerTokenError(MALFORMED, f"the {part} is not unpadded base64url") from None
    if _b64encode(data) != text:
        raise CustomerTokenError(MALFORMED, f"the {part} is not canonical base64url")
    return data
