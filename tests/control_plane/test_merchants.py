"""Reading one's merchant; making, listing and revoking its tokens."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from sqlalchemy import select

from control_plane.storage.models import ApiToken, AuditEvent
from tests.control_plane.conftest import Plane, error_of


def test_get_merchant(plane: Plane) -> None:
    account = plane.merchant("corner market")
    body = plane.call("GET", f"/v1/merchants/{account.merchant_id}", account.token).get_json()
    assert body["id"] == account.merchant_id and body["name"] == "corner market"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["created_at"])


def _create(plane: Plane, merchant_id: int, token: str, body: Any) -> Any:
    return plane.call("POST", f"/v1/merchants/{merchant_id}/tokens", token, json=body)


def test_token_is_shown_once_and_stored_hashed(plane: Plane) -> None:
    account = plane.merchant("alpha")
    response = _create(plane, account.merchant_id, account.token,
                       {"scopes": ["read", "publish"], "name": "ci deploys"})
    assert response.status_code == 201
    made = response.get_json()
    secret = made.pop("token")
    assert re.fullmatch(r"prt_[A-Za-z0-9_-]{43}", secret)
    assert made["scopes"] == ["publish", "read"] and made["name"] == "ci deploys"
    assert response.headers["Location"] == \
        f"/v1/merchants/{account.merchant_id}/tokens/{made['id']}"

    shown_again = [plane.call("GET", response.headers["Location"], account.token),
                   plane.call("GET", f"/v1/merchants/{account.merchant_id}/tokens",
                              account.token)]
    for later in shown_again:
        assert later.status_code == 200 and secret not in later.get_data(as_text=True)
    assert shown_again[0].get_json() == made

    with plane.state.db.session() as session:
        row = session.get(ApiToken, made["id"])
        assert row is not None
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        stored = [str(getattr(row, c.key)) for c in ApiToken.__table__.columns]
        assert not any(secret in value or secret[4:] in value for value in stored)

    # the new token works, within its scopes
    assert plane.call("GET", f"/v1/merchants/{account.merchant_id}", secret).status_code == 200
    assert plane.call("GET", "/v1/audit", secret).status_code == 403


def test_a_token_grants_only_scopes_it_holds(plane: Plane) -> None:
    account = plane.merchant("alpha")
    publisher = plane.token(account.merchant_id, "publish")
    refused = _create(plane, account.merchant_id, publisher, {"scopes": ["publish", "audit"]})
    assert refused.status_code == 403
    assert error_of(refused)["field"] == "scopes" and "audit" in error_of(refused)["message"]
    assert _create(plane, account.merchant_id, publisher,
                   {"scopes": ["publish"]}).status_code == 201


@pytest.mark.parametrize(("body", "field"), [
    ({}, "scopes"),
    ({"scopes": []}, "scopes"),
    ({"scopes": "read"}, "scopes"),
    ({"scopes": ["read", "admin"]}, "scopes[1]"),
    ({"scopes": ["read", 7]}, "scopes[1]"),
    ({"scopes": ["read", "read"]}, "scopes"),
    ({"scopes": ["read"], "name": ""}, "name"),
    ({"scopes": ["read"], "name": "   "}, "name"),
    ({"scopes": ["read"], "name": "x" * 101}, "name"),
    ({"scopes": ["read"], "name": 5}, "name"),
    ({"scopes": ["read"], "expires": "never"}, "expires"),
    (b'{"scopes": ["read"]', "body"),
    (b'["read"]', "body"),
    (b'{"scopes": ["read"], "scopes": ["audit"]}', "body.scopes"),
    (b"\xff\xfe", "body"),
    (b"", "body"),
])
def test_invalid_token_request_is_422_naming_the_field(plane: Plane, body: Any,
                                                       field: str) -> None:
    account = plane.merchant("alpha")
    path = f"/v1/merchants/{account.merchant_id}/tokens"
    response = (plane.call("POST", path, account.token, data=body) if isinstance(body, bytes)
                else plane.call("POST", path, account.token, json=body))
    assert response.status_code == 422
    assert error_of(response)["field"] == field
    with plane.state.db.session() as session:
        assert len(session.scalars(select(ApiToken)).all()) == 1  # nothing half-made


def test_revoke_token(plane: Plane) -> None:
    account = plane.merchant("alpha")
    made = _create(plane, account.merchant_id, account.token, {"scopes": ["read"]}).get_json()
    path = f"/v1/merchants/{account.merchant_id}/tokens/{made['id']}"
    first = plane.call("DELETE", path, account.token)
    assert first.status_code == 200 and first.get_json()["revoked_at"] is not None
    assert plane.call("GET", f"/v1/merchants/{account.merchant_id}",
                      made["token"]).status_code == 401
    again = plane.call("DELETE", path, account.token)
    assert again.get_json()["revoked_at"] == first.get_json()["revoked_at"]
    with plane.state.db.session() as session:
        kinds = session.scalars(select(AuditEvent.kind).where(
            AuditEvent.kind == "token.revoked")).all()
    assert kinds == ["token.revoked"]


def test_another_merchants_token_id_is_404(plane: Plane) -> None:
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    betas = plane.call("GET", f"/v1/merchants/{beta.merchant_id}/tokens",
                       beta.token).get_json()["tokens"]
    for method in ("GET", "DELETE"):
        response = plane.call(method, f"/v1/merchants/{alpha.merchant_id}/tokens/"
                              f"{betas[0]['id']}", alpha.token)
        assert response.status_code == 404 and error_of(response)["field"] == "token_id"
    assert plane.call("GET", f"/v1/merchants/{beta.merchant_id}", beta.token).status_code == 200


def test_token_events_name_their_actor(plane: Plane) -> None:
    account = plane.merchant("alpha")
    made = _create(plane, account.merchant_id, account.token,
                   {"scopes": ["read"], "name": "dashboard"}).get_json()
    plane.call("DELETE", f"/v1/merchants/{account.merchant_id}/tokens/{made['id']}",
               account.token)
    events = plane.call("GET", f"/v1/audit?actor=token:{account.token_id}",
                        account.token).get_json()["events"]
    assert [(e["kind"], e["merchant_id"], e["details"]) for e in events] == [
        ("token.created", account.merchant_id,
         {"token_id": made["id"], "name": "dashboard", "scopes": ["read"]}),
        ("token.revoked", account.merchant_id, {"token_id": made["id"]}),
    ]
