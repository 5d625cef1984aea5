"""Publishing: signed, numbered releases; rollback as a new release; canary rollouts; a
publish that fails leaves nothing behind; concurrent publishes get distinct numbers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from control_plane import signing
from control_plane.storage.models import AuditEvent, Release, Rollout
from poprules import bundle as fmt
from tests.control_plane.conftest import Plane, error_of
from tests.control_plane.test_versions import PROGRAM, draft, upload


def _publish(plane: Plane, merchant_id: int, token: str, **body: Any) -> Any:
    return plane.call("POST", f"/v1/merchants/{merchant_id}/releases", token,
                      json={"version": 1, **body})


def _count(plane: Plane, model: type[Any]) -> int:
    with plane.state.db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def ready(plane: Plane) -> tuple[Plane, int, str]:
    account = plane.merchant("corner")
    assert upload(plane, account.merchant_id, account.token, draft()).status_code == 201
    return plane, account.merchant_id, account.token


def test_publish_signs_numbers_and_stores_the_bundle(ready: tuple[Plane, int, str]) -> None:
    plane, merchant, token = ready
    response = _publish(plane, merchant, token)
    assert response.status_code == 201, response.get_json()
    release = response.get_json()
    assert (release["number"], release["version"], release["program"], release["groups"],
            release["rollback_of"]) == (1, 1, "corner-market", ["*"], None)
    assert response.headers["Location"] == f"/v1/merchants/{merchant}/releases/1"

    bundle = plane.call("GET", f"/v1/merchants/{merchant}/releases/1/bundle", token)
    assert bundle.status_code == 200
    decoded = fmt.decode(bundle.data)
    assert decoded.release_hash == release["hash"]
    keyring = plane.call("GET", "/v1/keys").get_json()
    (key,) = keyring["keys"]
    assert release["key_id"] == key["key_id"]
    assert signing.verify_with(key["public_key"], merchant, 1, release["hash"],
                               release["signature"])
    assert decoded.manifest["customer_keys"] == [{"key_id": key["key_id"],
                                                  "public_key": key["public_key"]}]
    assert _publish(plane, merchant, token).get_json()["number"] == 2
    listed = plane.call("GET", f"/v1/merchants/{merchant}/releases", token).get_json()
    assert listed["live"] == 2 and [r["number"] for r in listed["releases"]] == [2, 1]
    with plane.state.db.session() as session:
        events = session.scalars(select(AuditEvent).where(
            AuditEvent.kind == "release.published").order_by(AuditEvent.id)).all()
        assert [(e.details["release"], e.actor) for e in events] == \
            [(1, f"token:{events[0].actor_token_id}"), (2, f"token:{events[0].actor_token_id}")]


def test_rollback_is_a_new_signed_release_of_earlier_content(
        ready: tuple[Plane, int, str]) -> None:
    plane, merchant, token = ready
    first = _publish(plane, merchant, token).get_json()
    upload(plane, merchant, token, draft(program=PROGRAM.replace("discount: 10%",
                                                                 "discount: 15%")))
    second = _publish(plane, merchant, token, version=2).get_json()
    assert second["hash"] != first["hash"]
    back = plane.call("POST", f"/v1/merchants/{merchant}/rollback", token, json={"to": 1})
    assert back.status_code == 201, back.get_json()
    third = back.get_json()
    assert (third["number"], third["rollback_of"], third["hash"], third["version"]) == \
        (3, 1, first["hash"], 1)
    assert third["signature"] != first["signature"]  # the number is signed too
    live = plane.call("GET", f"/v1/merchants/{merchant}/releases", token).get_json()["live"]
    assert live == 3
    again = plane.call("POST", f"/v1/merchants/{merchant}/rollback", token, json={"to": 1})
    assert again.status_code == 422 and error_of(again)["field"] == "to"
    assert plane.call("POST", f"/v1/merchants/{merchant}/rollback", token,
                      json={"to": 9}).status_code == 404
    with plane.state.db.session() as session:
        kinds = session.scalars(select(AuditEvent.kind).where(
            AuditEvent.kind.like("release.%")).order_by(AuditEvent.id)).all()
        assert kinds == ["release.published", "release.published", "release.rolled_back"]


def test_a_canary_goes_first_then_everyone(ready: tuple[Plane, int, str]) -> None:
    plane, merchant, token = ready
    _publish(plane, merchant, token)
    upload(plane, merchant, token, draft(program=PROGRAM.replace("discount: 10%",
                                                                 "discount: 15%")))
    canary = _publish(plane, merchant, token, version=2, group="canary").get_json()
    assert canary["groups"] == ["canary"]
    base = f"/v1/merchants/{merchant}"
    assert plane.call("GET", f"{base}/releases", token).get_json()["live"] == 1
    diff = plane.call("POST", f"{base}/versions/2/diff", token,
                      json={"group": "canary"}).get_json()
    assert diff["against"]["release"] == 2 and diff["changed"] == 0
    out = plane.call("POST", f"{base}/releases/2/rollout", token, json={"group": "*"})
    assert out.status_code == 200 and out.get_json()["groups"] == ["*", "canary"]
    assert plane.call("GET", f"{base}/releases", token).get_json()["live"] == 2
    stale = plane.call("POST", f"{base}/releases/1/rollout", token, json={"group": "*"})
    assert stale.status_code == 422 and "roll back" in error_of(stale)["message"]
    bad = _publish(plane, merchant, token, group="Not A Group")
    assert bad.status_code == 422 and error_of(bad)["field"] == "group"


def test_a_publish_the_interpreter_disagrees_with_is_never_signed(
        ready: tuple[Plane, int, str], monkeypatch: pytest.MonkeyPatch) -> None:
    plane, merchant, token = ready

    def wrong(program: Any, request: Any) -> dict[str, Any]:
        return {"totals": {}}

    monkeypatch.setattr("control_plane.publishing.reference_quote", wrong)
    events_before = _count(plane, AuditEvent)
    response = _publish(plane, merchant, token)
    assert response.status_code == 409
    assert error_of(response)["field"] == "samples[0]"
    assert (_count(plane, Release), _count(plane, Rollout)) == (0, 0)
    assert _count(plane, AuditEvent) == events_before


def test_publish_access_and_missing_things(ready: tuple[Plane, int, str]) -> None:
    plane, merchant, token = ready
    other = plane.merchant("other")
    reader = plane.token(merchant, "read")
    assert plane.call("POST", f"/v1/merchants/{merchant}/releases",
                      json={"version": 1}).status_code == 401
    assert _publish(plane, merchant, reader).status_code == 403
    assert _publish(plane, merchant, other.token).status_code == 403
    assert _publish(plane, merchant, token, version=5).status_code == 404
    assert error_of(_publish(plane, merchant, token, version="1"))["field"] == "version"
    assert plane.call("GET", f"/v1/merchants/{merchant}/releases/1", token).status_code == 404
    assert plane.call("GET", f"/v1/merchants/{merchant}/releases/1/bundle",
                      token).status_code == 404
    assert _publish(plane, merchant, token).status_code == 201
    assert plane.call("GET", f"/v1/merchants/{merchant}/releases/1",
                      other.token).status_code == 403
    assert plane.call("GET", f"/v1/merchants/{merchant}/releases/1/bundle",
                      reader).status_code == 200


def test_concurrent_publishes_get_distinct_numbers(ready: tuple[Plane, int, str]) -> None:
    plane, merchant, token = ready

    def one(_: int) -> Any:
        client = plane.app.test_client()
        response = client.post(f"/v1/merchants/{merchant}/releases", json={"version": 1},
                               headers={"Authorization": f"Bearer {token}"})
        return response.status_code, response.get_json()["number"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(4)))
    assert sorted(results) == [(201, 1), (201, 2), (201, 3), (201, 4)]
    assert _count(plane, Release) == 4 and _count(plane, Rollout) == 4


def test_publishing_to_every_pop_refreshes_the_redemption_snapshot(plane: Plane) -> None:
    """Codes issued from a draft reach PoPs once its program is live everywhere."""
    account = plane.merchant("corner")
    base = f"/v1/merchants/{account.merchant_id}"
    program = PROGRAM.replace("    codes: [SUMMER-24]\n",
                              "    codes: [SUMMER-24]\n    generate: {count: 3, length: 8}\n")
    assert upload(plane, account.merchant_id, account.token,
                  draft(program=program)).status_code == 201
    issued = plane.call("POST", f"{base}/versions/1/coupon-sets/summer/codes", account.token)
    assert issued.status_code == 201 and len(issued.get_json()["codes"]) == 3
    assert plane.call("GET", f"{base}/redemptions", account.token).status_code == 404
    assert _publish(plane, account.merchant_id, account.token, group="canary").status_code == 201
    assert plane.call("GET", f"{base}/redemptions", account.token).status_code == 404
    assert plane.call("POST", f"{base}/releases/1/rollout", account.token,
                      json={"group": "*"}).status_code == 200
    snapshot = plane.call("GET", f"{base}/redemptions", account.token).get_json()
    assert snapshot["version"] == 1
    assert len(snapshot["snapshot"]["issued"]["summer"]) == 3
