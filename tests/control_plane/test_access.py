"""Who may call what: 401 without a live token, 403 for a missing scope or another
merchant, on every protected endpoint."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from nacl.signing import SigningKey

from control_plane.auth import SCOPES
from tests.control_plane.conftest import Account, Plane, error_of
from tests.control_plane.test_cloudflare import FakeCloudflare
from tests.control_plane.test_ledger import seed_claim
from tests.control_plane.test_versions import PROGRAM, draft


@dataclass(frozen=True)
class Endpoint:
    method: str
    rule: str  # as Flask writes it
    scope: str
    body: dict[str, object] | None = None
    number: int = 1  # of the version or release in the path

    def url(self, merchant_id: int) -> str:
        """The rule with the ids of what `populate` made for merchant `merchant_id`."""
        return (self.rule.replace("<int:merchant_id>", str(merchant_id))
                .replace("<int:token_id>", "1").replace("<int:number>", str(self.number))
                .replace("<set_id>", "summer").replace("<int:pop_id>", "1")
                .replace("<customer>", "ab" * 32))


M = "/v1/merchants/<int:merchant_id>"
ENDPOINTS = (
    Endpoint("GET", M, "read"),
    Endpoint("GET", f"{M}/tokens", "read"),
    Endpoint("GET", f"{M}/tokens/<int:token_id>", "read"),
    Endpoint("POST", f"{M}/tokens", "publish", {"scopes": ["publish"]}),
    Endpoint("DELETE", f"{M}/tokens/<int:token_id>", "publish"),
    Endpoint("GET", "/v1/audit", "audit"),
    Endpoint("POST", f"{M}/versions", "publish", draft()),
    Endpoint("GET", f"{M}/versions", "read"),
    Endpoint("GET", f"{M}/versions/<int:number>", "read"),
    Endpoint("POST", f"{M}/versions/<int:number>/simulate", "read", {}),
    Endpoint("POST", f"{M}/versions/<int:number>/diff", "read", {}),
    Endpoint("POST", f"{M}/versions/<int:number>/coupon-sets/<set_id>/codes", "publish"),
    Endpoint("POST", f"{M}/releases", "publish", {"version": 1, "group": "canary"}),
    Endpoint("GET", f"{M}/releases", "read"),
    Endpoint("GET", f"{M}/releases/<int:number>", "read"),
    Endpoint("GET", f"{M}/releases/<int:number>/bundle", "read"),
    Endpoint("POST", f"{M}/releases/<int:number>/rollout", "publish", {"group": "north"}, 2),
    Endpoint("POST", f"{M}/rollback", "publish", {"to": 1}),
    Endpoint("GET", f"{M}/redemptions", "read"),
    Endpoint("POST", f"{M}/enrollment-tokens", "publish", {"pop": "stall-2"}),
    Endpoint("GET", f"{M}/pops", "read"),
    Endpoint("PATCH", f"{M}/pops/<int:pop_id>", "publish", {"group": "canary"}),
    Endpoint("GET", "/v1/pops/<int:pop_id>/reconciliation", "read"),
    Endpoint("POST", "/v1/customer-tokens", "publish",
             {"customer": {"tier": "gold"}, "subject": "shopper-1"}),
    Endpoint("GET", "/v1/wallets/<customer>", "read"),
    Endpoint("POST", "/v1/wallets/lookup", "read", {"subject": "shopper-1"}),
    Endpoint("POST", "/v1/claims", "publish", {"claim_token": "1-1.access", "subject": "s-1"}),
    Endpoint("GET", f"{M}/throttles", "read"),
    Endpoint("PUT", f"{M}/throttles", "publish", {"customer": {"window": 60, "max_claims": 5}}),
    Endpoint("POST", f"{M}/releases/<int:number>/cloudflare", "publish", {"percent": 10}, 2),
    Endpoint("POST", f"{M}/releases/<int:number>/cloudflare/promote", "publish", None, 2),
    Endpoint("POST", f"{M}/releases/<int:number>/cloudflare/rollback", "publish", None, 2),
)


def populate(plane: Plane, account: Account) -> None:
    """What every endpoint above needs to answer its caller: version 1 with a generated
    coupon set, version 2, releases 1 and 2 (so 1 can be rolled back to), issued codes and a
    redemption snapshot, and an enrolled PoP (id 1)."""
    base = f"/v1/merchants/{account.merchant_id}"
    program = PROGRAM.replace("    codes: [SUMMER-24]\n",
                              "    codes: [SUMMER-24]\n    generate: {count: 5, length: 8}\n")
    steps = [("POST", f"{base}/versions", draft(program=program)),
             ("POST", f"{base}/versions", draft(program=program.replace("discount: 10%",
                                                                        "discount: 12%"))),
             ("POST", f"{base}/releases", {"version": 1}),
             ("POST", f"{base}/releases", {"version": 2}),
             ("POST", f"{base}/versions/1/coupon-sets/summer/codes", None),
             ("POST", f"{base}/enrollment-tokens", {"pop": "stall-1"})]
    for method, path, body in steps:
        response = plane.call(method, path, account.token, json=body)
        assert response.status_code < 400, (path, response.get_json())
    enrollment = response.get_json()["token"]
    enrolled = plane.call("POST", "/v1/pops/enroll", json={
        "enrollment_token": enrollment, "public_key": bytes(SigningKey.generate().verify_key).hex()})
    assert enrolled.status_code == 201 and enrolled.get_json()["pop_id"] == 1, enrolled.get_json()
    seed_claim(plane, account.merchant_id, "1-1.access")  # a receipt's claim token, for /claims


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
                 and getattr(plane.app.view_functions[r.endpoint], "required_scope",
                             None) in SCOPES}
    listed = {(e.method, e.rule) for e in ENDPOINTS}
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
    populate(plane, account)
    with FakeCloudflare() as cloudflare:  # the merchant's Worker, for the deployer's endpoints
        cloudflare.configure(plane.app)
        cloudflare.seed(f"poprules-{account.merchant_id}")
        _every_scope_is_checked(plane, account)


def _every_scope_is_checked(plane: Plane, account: Account) -> None:
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
        if "<int:merchant_id>" not in endpoint.rule:
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
