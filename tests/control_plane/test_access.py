"""Who may call what: 401 without a live token, 403 for a missing scope or another
merchant, on every protected endpoint."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from control_plane.auth import SCOPES
from tests.control_plane.conftest import Plane, error_of


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {m}: a merchant id, {t}: a token id of that merchant
    scope: str
    body: dict[str, object] | None = None

    def url(self, merchant_id: int, token_id: int = 1) -> str:
        return self.path.format(m=merchant_id, t=token_id)


ENDPOINTS = (
    Endpoint("GET", "/v1/merchants/{m}", "read"),
    Endpoint("GET", "/v1/merchants/{m}/tokens", "read"),
    Endpoint("GET", "/v1/merchants/{m}/tokens/{t}", "read"),
    Endpoint("POST", "/v1/merchants/{m}/tokens", "publish", {"scopes": ["publish"]}),
    Endpoint("DELETE", "/v1/merchants/{m}/tokens/{t}", "publish"),
    Endpoint("GET", "/v1/audit", "audit"),
)


def _call(plane: Plane, endpoint: Endpoint, merchant_id: int, token: str | None,
          header: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": header} if header is not None else {}
    response = plane.call(endpoint.method, endpoint.url(merchant_id), token, headers=headers,
                          json=endpoint.body)
    return response.status_code, error_of(response) if response.status_code >= 400 else {}


def test_every_endpoint_declares_who_may_call_it(plane: Plane) -> None:
    undeclared = [
        rule.rule for rule in plane.app.url_map.iter_rules()
        if rule.endpoint != "static"
        and not hasattr(plane.app.view_functions[rule.endpoint], "required_scope")
        and not hasattr(plane.app.view_functions[rule.endpoint], "public")
    ]
    assert undeclared == []
    protected = {(m, r.rule) for r in plane.app.url_map.iter_rules()
                 for m in r.methods or () if m not in ("HEAD", "OPTIONS")
                 and hasattr(plane.app.view_functions[r.endpoint], "required_scope")}
    listed = {(e.method, e.path.replace("{m}", "<int:merchant_id>")
               .replace("{t}", "<int:token_id>")) for e in ENDPOINTS}
    assert protected == listed, "a protected endpoint is missing from this test's matrix"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==",
                                    "prt_nobearer"])
def test_missing_or_malformed_token_is_401(plane: Plane, header: str | None) -> None:
    account = plane.merchant("alpha")
    for endpoint in ENDPOINTS:
        status, error = _call(plane, endpoint, account.merchant_id, None, header)
        assert status == 401, endpoint
        assert error["field"] == "authorization"
    response = plane.call("GET", f"/v1/merchants/{account.merchant_id}")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_token_is_401(plane: Plane) -> None:
    account = plane.merchant("alpha")
    for wrong in ("prt_" + "A" * 43, account.token + "x", account.token[:-1]):
        for endpoint in ENDPOINTS:
            status, error = _call(plane, endpoint, account.merchant_id, wrong)
            assert (status, error["message"]) == (401, "unknown or revoked token"), endpoint


def test_revoked_token_is_401(plane: Plane) -> None:
    account = plane.merchant("alpha")
    doomed = plane.call("POST", f"/v1/merchants/{account.merchant_id}/tokens", account.token,
                        json={"scopes": list(SCOPES)}).get_json()
    revoked = plane.call("DELETE", f"/v1/merchants/{account.merchant_id}/tokens/{doomed['id']}",
                         account.token)
    assert revoked.status_code == 200
    for endpoint in ENDPOINTS:
        status, _ = _call(plane, endpoint, account.merchant_id, doomed["token"])
        assert status == 401, endpoint


def test_wrong_scope_is_403(plane: Plane) -> None:
    account = plane.merchant("alpha")
    for endpoint in ENDPOINTS:
        others = [s for s in SCOPES if s != endpoint.scope]
        status, error = _call(plane, endpoint, account.merchant_id,
                              plane.token(account.merchant_id, *others))
        assert status == 403, endpoint
        assert error == {"field": "authorization",
                         "message": f"this token does not have the {endpoint.scope} scope"}
        allowed, _ = _call(plane, endpoint, account.merchant_id,
                           plane.token(account.merchant_id, endpoint.scope))
        assert allowed < 400, endpoint


def test_other_merchant_is_403_whether_it_exists_or_not(plane: Plane) -> None:
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    for endpoint in ENDPOINTS:
        if "{m}" not in endpoint.path:
            continue
        for target in (beta.merchant_id, beta.merchant_id + 1000):
            status, error = _call(plane, endpoint, target, alpha.token)
            assert (status, error["field"]) == (403, "merchant_id"), (endpoint, target)
    # and nothing of beta's changed hands
    tokens = plane.call("GET", f"/v1/merchants/{beta.merchant_id}/tokens", beta.token)
    assert [t["revoked_at"] for t in tokens.get_json()["tokens"]] == [None]


def test_audit_shows_only_the_callers_merchant(plane: Plane) -> None:
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    events = plane.call("GET", "/v1/audit", alpha.token).get_json()["events"]
    assert {e["merchant_id"] for e in events} == {alpha.merchant_id, None}
    assert beta.merchant_id not in {e["merchant_id"] for e in events}
