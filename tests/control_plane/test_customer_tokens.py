"""Customer tokens: issued by the control plane, verified offline by a PoP with the keyring
alone (poprules.customer_token), refused for every way a token can be wrong."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from nacl.signing import SigningKey as PrivateKey
from sqlalchemy import select

from control_plane import signing
from control_plane.context import control_plane
from control_plane.coupon_key import customer_key
from control_plane.storage.models import AuditEvent
from poprules import customer_token
from poprules.customer_token import (
    BAD_SIGNATURE,
    CONTEXT,
    EXPIRED,
    MALFORMED,
    MAX_TOKEN_LENGTH,
    ORDERS_LIMIT,
    TAG_LIMIT,
    TAGS_LIMIT,
    TIER_LIMIT,
    UNKNOWN_KEY,
    WRONG_MERCHANT,
    CustomerTokenError,
    verify_customer_token,
)
from tests.control_plane.conftest import Account, Plane, error_of

CUSTOMER = {"tier": "gold", "orders": 12, "tags": ["vip", "staff"], "referred": False}


def _issue(plane: Plane, token: str | None, **body: Any) -> Any:
    return plane.call("POST", "/v1/customer-tokens", token,
                      json={"customer": CUSTOMER, "subject": "shopper-42", **body})


def _issued(plane: Plane, account: Account, **body: Any) -> dict[str, Any]:
    response = _issue(plane, account.token, **body)
    assert response.status_code == 201, response.get_json()
    made: dict[str, Any] = response.get_json()
    return made


def _keyed(plane: Plane, merchant_id: int, opaque_id: str) -> str:
    """What a token carries for a shop's id: HMAC-SHA256 under the merchant's customer key."""
    key = customer_key(plane.state.settings.key_dir, merchant_id)
    return hmac.new(key, opaque_id.encode(), hashlib.sha256).hexdigest()


def _keyring(plane: Plane) -> dict[str, str]:
    keys = plane.call("GET", "/v1/keys").get_json()["keys"]
    return {k["key_id"]: k["public_key"] for k in keys}


def _reason(token: str, keyring: dict[str, str], now: int, merchant_id: int) -> str:
    with pytest.raises(CustomerTokenError) as refused:
        verify_customer_token(token, keyring, now, merchant_id)
    return refused.value.reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_issue_and_verify_round_trip(plane: Plane) -> None:
    account = plane.merchant("alpha")
    before = int(time.time())
    response = _issue(plane, account.token, ttl=600)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    made = response.get_json()
    assert set(made) == {"token", "expires_at"}
    payload = verify_customer_token(made["token"], _keyring(plane), int(time.time()),
                                    account.merchant_id)
    assert payload == {
        "v": 1, "merchant": account.merchant_id,
        "sub": _keyed(plane, account.merchant_id, "shopper-42"), "ref": None,
        "customer": {"tier": "gold", "orders": 12, "tags": ["staff", "vip"], "referred": False},
        "iat": payload["iat"], "exp": payload["iat"] + 600, "jti": payload["jti"]}
    assert before <= payload["iat"] <= int(time.time())
    assert made["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%S.000000Z",
                                               time.gmtime(payload["exp"]))
    # compact: <payload>.<key id>.<signature>, the payload canonical JSON
    encoded, key_id, _ = made["token"].split(".")
    assert key_id in _keyring(plane)
    assert _unb64(encoded) == json.dumps(payload, sort_keys=True,
                                         separators=(",", ":")).encode()
    assert "shopper-42" not in made["token"] and "shopper-42" not in _unb64(encoded).decode()

    with plane.state.db.session() as session:
        [issued] = session.scalars(select(AuditEvent).where(
            AuditEvent.kind == "customer_token.issued")).all()
    assert (issued.merchant_id, issued.actor_token_id) == (account.merchant_id, account.token_id)
    assert issued.details == {"jti": payload["jti"], "key_id": key_id, "sub": payload["sub"],
                              "ref": None, "expires_at": made["expires_at"]}
    assert made["token"].split(".")[2] not in json.dumps(issued.details)


def test_every_token_is_new(plane: Plane) -> None:
    account = plane.merchant("alpha")
    first, second = _issued(plane, account)["token"], _issued(plane, account)["token"]
    assert first != second
    keyring = _keyring(plane)
    assert verify_customer_token(first, keyring, int(time.time()), account.merchant_id)["jti"] \
        != verify_customer_token(second, keyring, int(time.time()), account.merchant_id)["jti"]


def test_a_subject_is_known_by_a_keyed_hash_per_merchant(plane: Plane) -> None:
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    keyring, now = _keyring(plane), int(time.time())
    subs = [verify_customer_token(_issued(plane, account)["token"], keyring, now,
                                  account.merchant_id)["sub"]
            for account in (alpha, alpha, beta)]
    assert subs[0] == subs[1] != subs[2]  # stable for a merchant, unlinkable across merchants
    assert hashlib.sha256(b"shopper-42").hexdigest() not in subs  # a guess cannot confirm it


def test_a_token_expires(plane: Plane) -> None:
    account = plane.merchant("alpha")
    token = _issued(plane, account, ttl=60)["token"]
    keyring = _keyring(plane)
    exp = json.loads(_unb64(token.split(".")[0]))["exp"]
    assert verify_customer_token(token, keyring, exp - 1, account.merchant_id)["exp"] == exp
    assert _reason(token, keyring, exp, account.merchant_id) == EXPIRED
    assert _reason(token, keyring, exp + 3600, account.merchant_id) == EXPIRED


def test_a_tampered_token_is_refused(plane: Plane) -> None:
    account = plane.merchant("alpha")
    token = _issued(plane, account)["token"]
    keyring, now = _keyring(plane), int(time.time())
    encoded, key_id, signature = token.split(".")
    payload = json.loads(_unb64(encoded))
    payload["customer"]["tier"] = "platinum"
    forged = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    assert _reason(f"{forged}.{key_id}.{signature}", keyring, now,
                   account.merchant_id) == BAD_SIGNATURE
    flipped = bytearray(_unb64(signature))
    flipped[0] ^= 1
    assert _reason(f"{encoded}.{key_id}.{_b64(bytes(flipped))}", keyring, now,
                   account.merchant_id) == BAD_SIGNATURE


def test_a_token_for_another_merchant_is_refused(plane: Plane) -> None:
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    token = _issued(plane, alpha)["token"]
    keyring, now = _keyring(plane), int(time.time())
    assert _reason(token, keyring, now, beta.merchant_id) == WRONG_MERCHANT
    assert verify_customer_token(_issued(plane, beta)["token"], keyring, now,
                                 beta.merchant_id)["merchant"] == beta.merchant_id


def test_a_token_under_an_unknown_key_is_refused(plane: Plane) -> None:
    account = plane.merchant("alpha")
    token = _issued(plane, account)["token"]
    stranger = bytes(PrivateKey.generate().verify_key).hex()
    assert _reason(token, {}, int(time.time()), account.merchant_id) == UNKNOWN_KEY
    assert _reason(token, {"0123456789abcdef": stranger}, int(time.time()),
                   account.merchant_id) == UNKNOWN_KEY
    # the right key id with another key's public half
    key_id = token.split(".")[1]
    assert _reason(token, {key_id: stranger}, int(time.time()),
                   account.merchant_id) == BAD_SIGNATURE


def test_old_tokens_verify_after_a_key_rotation(plane: Plane) -> None:
    account = plane.merchant("alpha")
    old = _issued(plane, account)["token"]
    with plane.app.app_context():
        plane_state = control_plane()
        with plane_state.db.session() as session:
            old_key, new_key = plane_state.keyring.rotate(session)
    new = _issued(plane, account)["token"]
    assert (old.split(".")[1], new.split(".")[1]) == (old_key, new_key)
    keyring, now = _keyring(plane), int(time.time())
    assert set(keyring) == {old_key, new_key}
    for token in (old, new):
        assert verify_customer_token(token, keyring, now, account.merchant_id)["merchant"] == \
            account.merchant_id
    # a PoP whose bundle predates the rotation knows only the old key
    assert _reason(new, {old_key: keyring[old_key]}, now, account.merchant_id) == UNKNOWN_KEY


def test_a_referrer_goes_in_hashed_and_marks_the_customer_referred(plane: Plane) -> None:
    account = plane.merchant("alpha")
    customer = {"tier": "gold", "tags": ["b", "a", "b"]}
    token = _issued(plane, account, customer=customer, referrer="friend@example.com")["token"]
    payload = verify_customer_token(token, _keyring(plane), int(time.time()),
                                    account.merchant_id)
    assert payload["ref"] == _keyed(plane, account.merchant_id, "friend@example.com")
    assert payload["customer"] == {"tier": "gold", "orders": 0, "tags": ["a", "b"],
                                   "referred": True}
    assert "friend" not in _unb64(token.split(".")[0]).decode()


def test_the_largest_token_fits(plane: Plane) -> None:
    account = plane.merchant("alpha")
    wide = "\U0001f600" * TAG_LIMIT  # four UTF-8 bytes a character
    customer = {"tier": "\U0001f600" * TIER_LIMIT, "orders": ORDERS_LIMIT,
                "tags": [wide[:-2] + f"{i:02d}" for i in range(TAGS_LIMIT)], "referred": True}
    token = _issued(plane, account, customer=customer, subject="s" * 200, referrer="r" * 200,
                    ttl=86400)["token"]
    assert MAX_TOKEN_LENGTH - 1000 < len(token) <= MAX_TOKEN_LENGTH
    payload = verify_customer_token(token, _keyring(plane), int(time.time()),
                                    account.merchant_id)
    assert payload["customer"]["tier"] == customer["tier"]


def test_issuing_needs_the_publish_scope(plane: Plane) -> None:
    account = plane.merchant("alpha")
    assert _issue(plane, None).status_code == 401
    for scopes in (("read",), ("read", "audit")):
        refused = _issue(plane, plane.token(account.merchant_id, *scopes))
        assert refused.status_code == 403
        assert error_of(refused) == {"field": "authorization",
                                     "message": "this token does not have the publish scope"}
    assert _issue(plane, plane.token(account.merchant_id, "publish")).status_code == 201
    with plane.state.db.session() as session:
        assert len(session.scalars(select(AuditEvent).where(
            AuditEvent.kind == "customer_token.issued")).all()) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"subject": "s"}, "customer"),
    ({"customer": CUSTOMER}, "subject"),
    ({"customer": "gold", "subject": "s"}, "customer"),
    ({"customer": {"tier": 5}, "subject": "s"}, "customer.tier"),
    ({"customer": {"tier": "x" * (TIER_LIMIT + 1)}, "subject": "s"}, "customer.tier"),
    ({"customer": {"orders": -1}, "subject": "s"}, "customer.orders"),
    ({"customer": {"orders": 1.5}, "subject": "s"}, "customer.orders"),
    ({"customer": {"orders": "3"}, "subject": "s"}, "customer.orders"),
    ({"customer": {"orders": True}, "subject": "s"}, "customer.orders"),
    ({"customer": {"orders": ORDERS_LIMIT + 1}, "subject": "s"}, "customer.orders"),
    ({"customer": {"tags": "vip"}, "subject": "s"}, "customer.tags"),
    ({"customer": {"tags": ["a"] * (TAGS_LIMIT + 1)}, "subject": "s"}, "customer.tags"),
    ({"customer": {"tags": ["vip", 3]}, "subject": "s"}, "customer.tags[1]"),
    ({"customer": {"tags": ["x" * (TAG_LIMIT + 1)]}, "subject": "s"}, "customer.tags[0]"),
    ({"customer": {"referred": "yes"}, "subject": "s"}, "customer.referred"),
    ({"customer": {"known": True}, "subject": "s"}, "customer.known"),
    ({"customer": {"referred": True}, "subject": "s"}, "referrer"),
    ({"customer": {"referred": False}, "subject": "s", "referrer": "f"}, "customer.referred"),
    ({"customer": {}, "subject": ""}, "subject"),
    ({"customer": {}, "subject": "s" * 201}, "subject"),
    ({"customer": {}, "subject": 42}, "subject"),
    ({"customer": {}, "subject": "s", "referrer": ""}, "referrer"),
    ({"customer": {}, "subject": "s", "referrer": 7}, "referrer"),
    ({"customer": {}, "subject": "s", "ttl": 59}, "ttl"),
    ({"customer": {}, "subject": "s", "ttl": 86401}, "ttl"),
    ({"customer": {}, "subject": "s", "ttl": "900"}, "ttl"),
    ({"customer": {}, "subject": "s", "ttl": 900.0}, "ttl"),
    ({"customer": {}, "subject": "s", "merchant": 2}, "merchant"),
    (b'{"customer": {"tier": "a", "tier": "b"}, "subject": "s"}', "body.tier"),
    (b"[]", "body"),
    (b'{"customer": {}, "subject": "\\ud800"}', "subject"),  # a lone surrogate
    (b'{"customer": {}, "subject": "s", "referrer": "x\\udfff"}', "referrer"),
    (b'{"customer": {"tier": "\\ud800"}, "subject": "s"}', "customer.tier"),
    (b'{"customer": {"tags": ["ok", "\\ud800"]}, "subject": "s"}', "customer.tags[1]"),
])
def test_a_bad_request_is_422_naming_the_field(plane: Plane, body: Any, field: str) -> None:
    account = plane.merchant("alpha")
    response = (plane.call("POST", "/v1/customer-tokens", account.token, data=body)
                if isinstance(body, bytes)
                else plane.call("POST", "/v1/customer-tokens", account.token, json=body))
    assert response.status_code == 422
    assert error_of(response)["field"] == field
    with plane.state.db.session() as session:
        assert session.scalars(select(AuditEvent).where(
            AuditEvent.kind == "customer_token.issued")).all() == []


def test_defaults_and_nulls_are_the_requests(plane: Plane) -> None:
    account = plane.merchant("alpha")
    before = int(time.time())
    token = _issued(plane, account, customer={"tier": None, "tags": None})["token"]
    payload = verify_customer_token(token, _keyring(plane), int(time.time()),
                                    account.merchant_id)
    assert payload["customer"] == {"tier": "", "orders": 0, "tags": [], "referred": False}
    assert payload["exp"] - payload["iat"] == 900 and payload["iat"] >= before


# -- the PoP's side alone: no control plane ----------------------------------------------------


def test_the_context_is_the_control_planes() -> None:
    assert CONTEXT == signing.CUSTOMER_CONTEXT


def _signed(payload: Any, key: PrivateKey, key_id: str = "00112233445566aa") -> str:
    document = payload if isinstance(payload, bytes) else json.dumps(
        payload, sort_keys=True, separators=(",", ":")).encode()
    return customer_token.assemble(document, key_id, key.sign(CONTEXT + document).signature)


GOOD = {"v": 1, "merchant": 3, "sub": "ab" * 32, "ref": None,
        "customer": {"tier": "", "orders": 0, "tags": [], "referred": False},
        "iat": 1000, "exp": 2000, "jti": "cd" * 16}


def _with(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def test_a_well_signed_token_verifies_offline() -> None:
    key = PrivateKey.generate()
    keyring = {"00112233445566aa": bytes(key.verify_key).hex()}
    assert verify_customer_token(_signed(GOOD, key), keyring, 1500, 3) == GOOD


@pytest.mark.parametrize("payload", [
    b"not json",
    b'{"v":1,"v":1}',
    b"[]",
    _with(v=2),
    _with(v=True),
    _with(extra=1),
    {k: v for k, v in GOOD.items() if k != "jti"},
    _with(merchant="3"),
    _with(iat=1000.5),
    _with(exp=1000),  # not after iat
    _with(sub="AB" * 32),
    _with(sub="ab" * 31),
    _with(ref=""),
    _with(ref="ab" * 32),  # a referrer, but not referred
    _with(customer={"tier": "", "orders": 0, "tags": [], "referred": True}),  # the reverse
    _with(customer={"tier": "", "orders": 0, "tags": []}),
    _with(customer={"tier": "", "orders": 0, "tags": ["b", "a"], "referred": False}),
    _with(customer={"tier": 1, "orders": 0, "tags": [], "referred": False}),
    _with(jti="x" * 32),
])
def test_a_well_signed_but_malformed_payload_is_refused(payload: Any) -> None:
    key = PrivateKey.generate()
    keyring = {"00112233445566aa": bytes(key.verify_key).hex()}
    assert _reason(_signed(payload, key), keyring, 1500, 3) == MALFORMED


def test_a_malformed_token_is_refused() -> None:
    key = PrivateKey.generate()
    keyring = {"00112233445566aa": bytes(key.verify_key).hex()}
    good = _signed(GOOD, key)
    encoded, key_id, signature = good.split(".")
    for token in ["", "abc", "a.b", f"{good}.x", f"{encoded}.{key_id.upper()}.{signature}",
                  f"{encoded}.{key_id}.{signature}=", f"{encoded}=.{key_id}.{signature}",
                  f"{encoded}.{key_id}.{signature[:-4]}", f"{encoded}.{key_id}.{signature}AA",
                  f"{encoded}+.{key_id}.{signature}", f"{encoded}.{key_id}.{signature[:-1]}B",
                  f"a.{key_id}.{signature}", None, 5, good + "A" * MAX_TOKEN_LENGTH]:
        assert _reason(token, keyring, 1500, 3) == MALFORMED, token  # type: ignore[arg-type]
    assert verify_customer_token(good, keyring, 1500, 3) == GOOD
