"""Drafts: upload with located errors, read back, simulate, and diff against the live release."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from control_plane.storage.models import AuditEvent, ProgramVersion
from poprules import api
from tests.conftest import ROOT
from tests.control_plane.conftest import Plane, error_of, start_app

EXAMPLE = ROOT / "examples" / "corner-market"
PROGRAM = (EXAMPLE / "rules.yaml").read_text()
CATALOG = (EXAMPLE / "catalog.json").read_text()
REQUEST = json.loads((EXAMPLE / "request.json").read_text())


def draft(**overrides: Any) -> dict[str, Any]:
    return {"program": PROGRAM, "catalog": CATALOG, "samples": [REQUEST], **overrides}


def upload(plane: Plane, merchant_id: int, token: str, body: Any) -> Any:
    return plane.call("POST", f"/v1/merchants/{merchant_id}/versions", token, json=body)


def versions_in_db(plane: Plane) -> int:
    with plane.state.db.session() as session:
        return session.scalar(select(func.count()).select_from(ProgramVersion)) or 0


def test_upload_read_and_list(plane: Plane) -> None:
    account = plane.merchant("corner")
    first = upload(plane, account.merchant_id, account.token, draft())
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert (body["number"], body["program"], body["rules"], body["samples"]) == \
        (1, "corner-market", 7, 1)
    assert first.headers["Location"] == f"/v1/merchants/{account.merchant_id}/versions/1"
    assert upload(plane, account.merchant_id, account.token, draft()).get_json()["number"] == 2

    listed = plane.call("GET", f"/v1/merchants/{account.merchant_id}/versions",
                        account.token).get_json()["versions"]
    assert [v["number"] for v in listed] == [2, 1]
    one = plane.call("GET", first.headers["Location"], account.token).get_json()
    assert one["sources"]["program"] == PROGRAM and one["sources"]["catalog"] == CATALOG
    assert one["sources"]["samples"] == [REQUEST]
    with plane.state.db.session() as session:
        kinds = session.scalars(select(AuditEvent.kind).where(
            AuditEvent.kind == "version.created")).all()
        assert len(kinds) == 2


def test_a_program_error_is_located_and_nothing_is_kept(plane: Plane) -> None:
    account = plane.merchant("corner")
    broken = PROGRAM.replace('when: order.fulfillment == "pickup"',
                             'when: order.fulfilment == "pickup"')
    response = upload(plane, account.merchant_id, account.token, draft(program=broken))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["source"] == "program" and error["rule"] == "pickup-boost"
    assert error["field"] == "when" and "order.fulfilment" in error["message"]
    line = next(n for n, text in enumerate(broken.splitlines(), 1) if "fulfilment" in text)
    assert error["line"] == line and error["column"] >= 1
    assert versions_in_db(plane) == 0


@pytest.mark.parametrize(("overrides", "field", "source"), [
    ({"catalog": '{"currency": "EUR", "items": [{"sku": "A"}]}'}, "catalog.items[0].price",
     "catalog"),
    ({"catalog": "sku,price\nA,1.00\n", "catalog_format": "csv"}, None, None),
    ({"samples": [{"lines": [{"sku": "NOPE", "qty": 1}], "at": "2026-07-04T10:00:00Z"}]},
     "samples[0].lines[0].sku", "samples"),
    ({"samples": [{"lines": [], "at": "soon"}]}, "samples[0].at", "samples"),
    ({"samples": "all"}, "samples", None),
    ({"program_format": "toml"}, "program_format", None),
    ({"program": ""}, "program", None),
    ({"program": 'program: x\ncurrency: EUR\ntimezone: UTC\nrules: [{id: a, discount: 5%'},
     None, "program"),
    ({"extra": 1}, "extra", None),
])
def test_bad_uploads_are_422_naming_the_field(plane: Plane, overrides: dict[str, Any],
                                              field: str | None, source: str | None) -> None:
    account = plane.merchant("corner")
    response = upload(plane, account.merchant_id, account.token, draft(**overrides))
    if field is None and source is None:  # the CSV catalog lacks the program's attributes
        assert response.status_code == 422
        assert response.get_json()["error"]["source"] in ("catalog", "program")
        return
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    if field is not None:
        assert error["field"] == field
    if source is not None:
        assert error["source"] == source
    assert versions_in_db(plane) == 0


def test_access_to_drafts(plane: Plane) -> None:
    owner, other = plane.merchant("owner"), plane.merchant("other")
    reader = plane.token(owner.merchant_id, "read")
    path = f"/v1/merchants/{owner.merchant_id}/versions"
    assert plane.call("POST", path, json=draft()).status_code == 401
    assert plane.call("POST", path, "prt_wrong", json=draft()).status_code == 401
    assert error_of(plane.call("POST", path, reader, json=draft()))["message"] == \
        "this token does not have the publish scope"
    assert plane.call("POST", path, other.token, json=draft()).status_code == 403
    assert upload(plane, owner.merchant_id, owner.token, draft()).status_code == 201
    assert plane.call("GET", f"{path}/1", other.token).status_code == 403
    assert plane.call("GET", f"{path}/1", reader).status_code == 200
    assert plane.call("GET", f"{path}/9", reader).status_code == 404
    assert plane.call("POST", f"{path}/1/simulate", reader, json={}).status_code == 200


def test_an_oversized_upload_is_413_and_kept_nowhere(migrated: str, tmp_path: Path) -> None:
    app = start_app(migrated, tmp_path / "keys", MAX_CONTENT_LENGTH=4096)
    try:
        plane = Plane(app)
        account = plane.merchant("corner")
        big = draft(catalog=CATALOG + " " * 5000)
        response = upload(plane, account.merchant_id, account.token, big)
        assert response.status_code == 413
        assert error_of(response)["field"] == "body"
        assert versions_in_db(plane) == 0
    finally:
        app.extensions["poprules"].db.dispose()


def test_simulate_gives_the_quotes_a_pop_would(plane: Plane) -> None:
    account = plane.merchant("corner")
    upload(plane, account.merchant_id, account.token, draft())
    path = f"/v1/merchants/{account.merchant_id}/versions/1/simulate"
    bad = {**REQUEST, "lines": [{"sku": "TEE-01", "qty": 0}]}
    body = plane.call("POST", path, account.token, json={"requests": [REQUEST, bad]}).get_json()
    program = api.load(EXAMPLE / "rules.yaml", EXAMPLE / "catalog.json")
    assert body["quotes"][0] == api.quote(program, REQUEST)
    assert body["quotes"][1] == {"error": {"field": "lines[0].qty", "message":
                                           "expected an integer of at least 1, found the number 0"}}
    # without requests: the draft's own samples
    assert plane.call("POST", path, account.token, json={}).get_json()["quotes"] == \
        [api.quote(program, REQUEST)]


def test_diff_against_nothing_live_then_against_the_live_release(plane: Plane) -> None:
    account = plane.merchant("corner")
    base = f"/v1/merchants/{account.merchant_id}"
    upload(plane, account.merchant_id, account.token, draft())
    first = plane.call("POST", f"{base}/versions/1/diff", account.token, json={}).get_json()
    assert first["against"] is None and first["changed"] == 1
    assert first["requests"][0]["totals"]["net"]["live"] is None

    assert plane.call("POST", f"{base}/releases", account.token,
                      json={"version": 1}).status_code == 201
    same = plane.call("POST", f"{base}/versions/1/diff", account.token, json={}).get_json()
    assert same["against"]["release"] == 1 and same["changed"] == 0
    assert same["requests"] == [{"index": 0, "changed": False, "totals": {}, "rules": []}]

    richer = PROGRAM.replace("cap: {order: 4.00}", "cap: {order: 9.00}")
    upload(plane, account.merchant_id, account.token, draft(program=richer))
    change = plane.call("POST", f"{base}/versions/2/diff", account.token, json={}).get_json()
    program = api.load(EXAMPLE / "rules.yaml", EXAMPLE / "catalog.json")
    live_quote = api.quote(program, REQUEST)
    boost = next(r for r in live_quote["rules"] if r["rule"] == "pickup-boost")
    assert boost["status"] == "capped"  # the example's cashback is cut by the 4.00 cap
    (request,) = change["requests"]
    assert request["changed"] and change["changed"] == 1
    (rule,) = [r for r in request["rules"] if r["rule"] == "pickup-boost"]
    assert rule["live"] == boost and rule["change"] == rule["draft"]["amount"] - boost["amount"]
    assert rule["change"] > 0
    wallet = request["totals"]["cashback_wallet"]
    assert wallet["change"] == wallet["draft"] - wallet["live"] > 0
