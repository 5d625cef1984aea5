"""GET /v1/whoami: any live merchant token learns its merchant, id and scopes."""

from __future__ import annotations

import pytest

from control_plane.auth import SCOPES
from tests.control_plane.conftest import Plane, error_of


@pytest.mark.parametrize("scope", SCOPES)
def test_any_scope_may_ask(plane: Plane, scope: str) -> None:
    plane.merchant("alpha")
    beta = plane.merchant("beta")
    token = plane.token(beta.merchant_id, scope)
    response = plane.call("GET", "/v1/whoami", token)
    assert response.status_code == 200
    body = response.get_json()
    assert body["merchant_id"] == beta.merchant_id and body["scopes"] == [scope]
    listed = plane.call("GET", f"/v1/merchants/{beta.merchant_id}/tokens", beta.token)
    assert body["token_id"] in {t["id"] for t in listed.get_json()["tokens"]}
    assert body["token_id"] != beta.token_id


def test_every_scope_in_order(plane: Plane) -> None:
    account = plane.merchant("alpha")
    body = plane.call("GET", "/v1/whoami", account.token).get_json()
    assert body == {"merchant_id": account.merchant_id, "token_id": account.token_id,
                    "scopes": list(SCOPES)}


@pytest.mark.parametrize("header", [None, "Bearer prt_" + "A" * 43, "Basic dXNlcjpwdw=="])
def test_no_live_token_is_401(plane: Plane, header: str | None) -> None:
    plane.merchant("alpha")
    headers = {} if header is None else {"Authorization": header}
    response = plane.call("GET", "/v1/whoami", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["field"] == "authorization"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_401(plane: Plane) -> None:
    account = plane.merchant("alpha")
    other = plane.call("POST", f"/v1/merchants/{account.merchant_id}/tokens", account.token,
                       json={"scopes": ["read"]}).get_json()
    plane.call("DELETE", f"/v1/merchants/{account.merchant_id}/tokens/{other['id']}",
               account.token)
    assert plane.call("GET", "/v1/whoami", other["token"]).status_code == 401
