"""Generated coupon codes (shown once, stored as keyed hashes), redemptions counted against the
live program's limits, and the signed, versioned snapshot a PoP pulls and quotes with."""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from control_plane import coupons
from control_plane.context import session as request_session
from control_plane.coupon_key import coupon_key
from control_plane.pop_auth import new_pop_token
from control_plane.signing import SNAPSHOT_CONTEXT, verify_document_with
from control_plane.storage.models import (
    AuditEvent,
    CouponCode,
    Pop,
    ProgramVersion,
    RedemptionSnapshot,
    Release,
    Rollout,
)
from edge_worker.core.redemptions import Redemptions
from poprules import api
from poprules import bundle as fmt
from poprules.codes import normalize_code
from tests.control_plane.conftest import Plane, error_of
from wasm_build.lang.catalog import parse_catalog_json
from wasm_build.lang.program import parse_program

CATALOG = json.dumps({"currency": "EUR", "items": [
    {"sku": "TEE-01", "title": "Organic tee", "price": "19.90", "category": "apparel"}]})
PROGRAM = """\
program: corner-market
currency: EUR
timezone: Europe/Lisbon
coupons:
  - id: welcome
    generate: {count: 5, prefix: "POP-", length: 6}
    max_redemptions: 3
    per_customer: 1
  - id: crowd
    codes: [pop-222222]
    generate: {count: 3, length: 8}
  - id: summer
    codes: [SUMMER-24]
    max_redemptions: 2
rules:
  - id: welcome-off
    coupon: welcome
    discount: 10%
  - id: summer-off
    coupon: summer
    discount: 5%
"""
CODE = re.compile(r"POP-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{6}")
ALICE, BOB = "a" * 64, "b" * 64


def add_version(plane: Plane, merchant_id: int, program: str = PROGRAM) -> int:
    with plane.state.db.session() as session:
        number = (session.scalar(select(func.max(ProgramVersion.number))
                                 .where(ProgramVersion.merchant_id == merchant_id)) or 0) + 1
        session.add(ProgramVersion(merchant_id=merchant_id, number=number,
                                   program_name="corner-market", program=program,
                                   program_format="yaml", catalog=CATALOG,
                                   catalog_format="json", samples=[]))
        session.commit()
        return number


def go_live(plane: Plane, merchant_id: int, number: int) -> bytes:
    """A release of version `number` rolled out to every PoP, then the snapshot refreshed
    as a rollout does."""
    with plane.state.db.session() as session:
        version = session.scalar(select(ProgramVersion).where(
            ProgramVersion.merchant_id == merchant_id, ProgramVersion.number == number))
        assert version is not None
        program = parse_program(version.program.encode(), json_syntax=False,
                                catalog=lambda c: parse_catalog_json(CATALOG.encode(),
                                                                     currency=c))
        bundle = api.build(program, key=coupon_key(plane.state.settings.key_dir, merchant_id))
        count = session.scalar(select(func.count()).select_from(Release)
                               .where(Release.merchant_id == merchant_id)) or 0
        release = Release(merchant_id=merchant_id, number=count + 1, version_id=version.id,
                          release_hash=fmt.decode(bundle).release_hash, key_id="test",
                          signature="0" * 128, bundle=bundle)
        session.add(release)
        session.flush()
        session.add(Rollout(merchant_id=merchant_id, release_id=release.id, group="*"))
        session.commit()
    refresh(plane, merchant_id)
    return bundle


def refresh(plane: Plane, merchant_id: int) -> RedemptionSnapshot | None:
    with plane.app.app_context():
        row = coupons.refresh_snapshot(request_session(), merchant_id)
        request_session().commit()
        return row


def redeem(plane: Plane, merchant_id: int, set_id: str, code: str,
           customer: str | None) -> None:
    """Book one redemption and refresh the snapshot, as receipt booking will."""
    key = coupon_key(plane.state.settings.key_dir, merchant_id)
    with plane.app.app_context():
        coupons.record_redemption(request_session(), merchant_id, "corner-market", set_id,
                                  fmt.code_hash(key, code), customer)
        coupons.refresh_snapshot(request_session(), merchant_id)
        request_session().commit()


def issue(plane: Plane, merchant_id: int, token: str, set_id: str = "welcome",
          number: int = 1, **kwargs: Any) -> Any:
    return plane.call(
        "POST", f"/v1/merchants/{merchant_id}/versions/{number}/coupon-sets/{set_id}/codes",
        token, **kwargs)


def snapshots(plane: Plane, merchant_id: int) -> list[RedemptionSnapshot]:
    with plane.state.db.session() as session:
        return list(session.scalars(select(RedemptionSnapshot)
                                    .where(RedemptionSnapshot.merchant_id == merchant_id)
                                    .order_by(RedemptionSnapshot.version)))


def test_codes_are_shown_once_and_stored_as_keyed_hashes(plane: Plane) -> None:
    account = plane.merchant("corner")
    add_version(plane, account.merchant_id)
    first = issue(plane, account.merchant_id, account.token)
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    codes = body.pop("codes")
    assert body == {"set": "welcome", "program": "corner-market", "version": 1, "issued": 5,
                    "total": 5, "count": 5}
    assert len(set(codes)) == 5 and all(CODE.fullmatch(c) for c in codes)
    assert first.headers["Cache-Control"] == "no-store"
    assert first.headers["X-Poprules-Issued"] == "5"

    key = coupon_key(plane.state.settings.key_dir, account.merchant_id)
    with plane.state.db.session() as session:
        rows = session.scalars(select(CouponCode)).all()
        assert sorted(r.code_hash for r in rows) == \
            sorted(fmt.normal_code_hash(key, normalize_code(c)) for c in codes)
        assert {(r.merchant_id, r.program_name, r.set_id) for r in rows} == \
            {(account.merchant_id, "corner-market", "welcome")}
        (event,) = session.scalars(select(AuditEvent)
                                   .where(AuditEvent.kind == "coupons.generated")).all()
        assert event.details == {"program": "corner-market", "version": 1, "set": "welcome",
                                 "issued": 5, "total": 5}
        assert event.actor_token_id == account.token_id
        stored = json.dumps([event.details for event in session.scalars(select(AuditEvent))])
    assert not any(c in stored or c.lower() in stored for c in codes)

    again = issue(plane, account.merchant_id, account.token)
    assert again.status_code == 200
    repeat = again.get_json()
    assert (repeat["issued"], repeat["total"], repeat["codes"]) == (0, 5, [])
    assert "issued already" in repeat["message"]
    with plane.state.db.session() as session:
        assert session.scalar(select(func.count()).select_from(CouponCode)) == 5
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.kind == "coupons.generated")) == 1


@pytest.mark.parametrize("how", [{"headers": {"Accept": "text/csv"}},
                                 {"query_string": {"format": "csv"}}])
def test_codes_as_csv(plane: Plane, how: dict[str, Any]) -> None:
    account = plane.merchant("corner")
    add_version(plane, account.merchant_id)
    response = issue(plane, account.merchant_id, account.token, "crowd", **how)
    assert response.status_code == 201
    assert response.content_type == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["code"] and len(rows) == 4
    assert all(re.fullmatch(r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}", r[0]) for r in rows[1:])
    none_left = issue(plane, account.merchant_id, account.token, "crowd", **how)
    assert (none_left.status_code, none_left.get_data(as_text=True)) == (200, "code\r\n")
    assert none_left.headers["X-Poprules-Issued"] == "0"


def test_a_later_version_with_a_higher_count_issues_the_difference(plane: Plane) -> None:
    account = plane.merchant("corner")
    add_version(plane, account.merchant_id)
    add_version(plane, account.merchant_id, PROGRAM.replace("count: 5", "count: 8"))
    assert issue(plane, account.merchant_id, account.token).get_json()["issued"] == 5
    more = issue(plane, account.merchant_id, account.token, number=2).get_json()
    assert (more["issued"], more["total"], more["count"], len(more["codes"])) == (3, 8, 8, 3)


def test_codes_never_collide_with_literal_or_issued_ones(
        plane: Plane, monkeypatch: pytest.MonkeyPatch) -> None:
    account = plane.merchant("corner")
    add_version(plane, account.merchant_id)
    # The draws: "222222" (the literal code pop-222222), "333333", "333333" again, ...
    draws = iter("222222" "333333" "333333" "444444" "333333" "555555" "666666" "777777")
    monkeypatch.setattr(secrets, "choice", lambda alphabet: next(draws))
    first = issue(plane, account.merchant_id, account.token).get_json()["codes"]
    assert first == ["POP-333333", "POP-444444", "POP-555555", "POP-666666", "POP-777777"]

    # a code issued before is never issued again, even for another set of another program
    other = PROGRAM.replace("program: corner-market", "program: other-market")
    add_version(plane, account.merchant_id, other)
    draws = iter("333333" "888888" "999999" "AAAAAA" "BBBBBB" "CCCCCC")
    assert issue(plane, account.merchant_id, account.token, number=2).get_json()["codes"] == \
        ["POP-888888", "POP-999999", "POP-AAAAAA", "POP-BBBBBB", "POP-CCCCCC"]

    # a set whose codes cannot be found gives up with an answer, not a spin
    add_version(plane, account.merchant_id, PROGRAM.replace("program: corner-market",
                                                            "program: third-market"))
    monkeypatch.setattr(secrets, "choice", lambda alphabet: "3")
    stuck = issue(plane, account.merchant_id, account.token, number=3)
    assert stuck.status_code == 422 and error_of(stuck)["field"] == "set_id"
    with plane.state.db.session() as session:  # nothing of the failed call was kept
        assert session.scalar(select(func.count()).select_from(CouponCode)
                              .where(CouponCode.program_name == "third-market")) == 0


def test_unknown_version_or_set_and_sets_that_do_not_generate(plane: Plane) -> None:
    account = plane.merchant("corner")
    add_version(plane, account.merchant_id)
    add_version(plane, account.merchant_id, PROGRAM.replace("count: 5, prefix: \"POP-\", length: 6",
                                                            "count: 40, length: 1"))
    cases = [(issue(plane, account.merchant_id, account.token, number=9), 404, "number"),
             (issue(plane, account.merchant_id, account.token, "nope"), 404, "set_id"),
             (issue(plane, account.merchant_id, account.token, "summer"), 422, "set_id"),
             (issue(plane, account.merchant_id, account.token, number=2), 422, "set_id"),
             (issue(plane, account.merchant_id, account.token, query_string={"format": "xml"}),
              422, "format")]
    for response, status, field in cases:
        assert (response.status_code, error_of(response)["field"]) == (status, field)
    assert "no generate" in error_of(cases[2][0])["message"]
    assert "generate.length" in error_of(cases[3][0])["message"]
    with plane.state.db.session() as session:
        assert session.scalar(select(func.count()).select_from(CouponCode)) == 0


def test_concurrent_calls_issue_the_count_once(plane: Plane) -> None:
    account = plane.merchant("corner")
    add_version(plane, account.merchant_id)

    def one(_: int) -> int:
        client = plane.app.test_client()
        response = client.post(
            f"/v1/merchants/{account.merchant_id}/versions/1/coupon-sets/welcome/codes",
            headers={"Authorization": f"Bearer {account.token}"})
        assert response.status_code in (200, 201), response.get_json()
        issued: int = response.get_json()["issued"]
        return issued

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sorted(pool.map(one, range(4))) == [0, 0, 0, 5]
    with plane.state.db.session() as session:
        assert session.scalar(select(func.count()).select_from(CouponCode)) == 5


def test_the_snapshot_counts_redemptions_against_the_live_limits(plane: Plane) -> None:
    account = plane.merchant("corner")
    merchant = account.merchant_id
    add_version(plane, merchant)
    codes = issue(plane, merchant, account.token).get_json()["codes"]
    assert snapshots(plane, merchant) == []  # nothing is live: no PoP to tell
    assert refresh(plane, merchant) is None

    go_live(plane, merchant, 1)
    key = coupon_key(plane.state.settings.key_dir, merchant)
    (first,) = snapshots(plane, merchant)
    document = json.loads(first.body)
    assert document == {
        "format": "poprules-redemptions/1", "merchant": merchant, "version": 1,
        "program": "corner-market",
        "issued": {"welcome": sorted(fmt.code_hash(key, c) for c in codes)},
        "spent": [], "spent_sets": [], "spent_by_customer": {}}
    assert first.body == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    again = refresh(plane, merchant)  # nothing changed: no new version
    assert again is not None and again.version == 1

    redeem(plane, merchant, "welcome", codes[0], ALICE)
    redeem(plane, merchant, "summer", "SUMMER-24", None)
    state = json.loads(snapshots(plane, merchant)[-1].body)
    assert (state["version"], state["spent_by_customer"], state["spent_sets"]) == \
        (2, {ALICE: ["welcome"]}, [])  # one use of summer's 2 changes nothing
    redeem(plane, merchant, "summer", "summer-24", BOB)
    redeem(plane, merchant, "welcome", codes[1], None)
    redeem(plane, merchant, "welcome", codes[2], BOB)
    state = json.loads(snapshots(plane, merchant)[-1].body)
    # summer reached max_redemptions 2, welcome its 3: every code of both is spent, and
    # per-customer entries of exhausted sets are left out
    assert state["spent_sets"] == ["summer", "welcome"]
    assert state["spent"] == sorted([fmt.code_hash(key, "SUMMER-24")]
                                    + [fmt.code_hash(key, c) for c in codes])
    assert state["spent_by_customer"] == {}
    assert [s.version for s in snapshots(plane, merchant)] == [1, 2, 3, 4]
    with plane.state.db.session() as session:
        events = session.scalars(select(AuditEvent).where(
            AuditEvent.kind == "redemptions.snapshot").order_by(AuditEvent.id)).all()
        assert [e.details["version"] for e in events] == [1, 2, 3, 4]
        assert events[-1].details["digest"] == snapshots(plane, merchant)[-1].digest

    # a new live version with higher limits: nothing is spent any more, but ALICE is at
    # her per_customer
    add_version(plane, merchant, PROGRAM.replace("max_redemptions: 3", "max_redemptions: 9")
                .replace("max_redemptions: 2", "max_redemptions: 9"))
    go_live(plane, merchant, 2)
    state = json.loads(snapshots(plane, merchant)[-1].body)
    assert (state["version"], state["spent"], state["spent_sets"]) == (5, [], [])
    assert state["spent_by_customer"] == {ALICE: ["welcome"], BOB: ["welcome"]}


def enroll(plane: Plane, merchant_id: int, name: str = "lisbon-1") -> tuple[int, str]:
    secret, digest = new_pop_token()
    with plane.state.db.session() as session:
        pop = Pop(merchant_id=merchant_id, name=name, group="*", public_key="00" * 32,
                  token_hash=digest)
        session.add(pop)
        session.commit()
        return pop.id, secret


def test_a_pop_pulls_the_signed_snapshot_and_quotes_with_it(plane: Plane) -> None:
    account = plane.merchant("corner")
    merchant = account.merchant_id
    pop_id, secret = enroll(plane, merchant)
    url = f"/v1/pops/{pop_id}/redemptions"
    nothing = plane.call("GET", url, secret)
    assert (nothing.status_code, error_of(nothing)["field"]) == (404, None)
    assert plane.call("GET", f"/v1/merchants/{merchant}/redemptions",
                      account.token).status_code == 404

    add_version(plane, merchant)
    codes = issue(plane, merchant, account.token).get_json()["codes"]
    bundle = go_live(plane, merchant, 1)
    redeem(plane, merchant, "welcome", codes[0], ALICE)
    redeem(plane, merchant, "summer", "SUMMER-24", None)
    redeem(plane, merchant, "summer", "SUMMER-24", None)

    pulled = plane.call("GET", url, secret)
    assert pulled.status_code == 200 and pulled.content_type == "application/json"
    latest = snapshots(plane, merchant)[-1]
    assert pulled.data == latest.body
    assert pulled.headers["ETag"] == f'"{latest.digest}"'
    assert pulled.headers["X-Poprules-Snapshot-Version"] == str(latest.version) == "3"
    (key,) = plane.call("GET", "/v1/keys").get_json()["keys"]
    assert pulled.headers["X-Poprules-Key-Id"] == key["key_id"]
    assert verify_document_with(key["public_key"], SNAPSHOT_CONTEXT, pulled.data,
                                pulled.headers["X-Poprules-Signature"])
    assert not verify_document_with(key["public_key"], SNAPSHOT_CONTEXT, pulled.data + b" ",
                                    pulled.headers["X-Poprules-Signature"])

    unchanged = plane.call("GET", url, secret, headers={"If-None-Match": pulled.headers["ETag"]})
    assert (unchanged.status_code, unchanged.data) == (304, b"")
    assert unchanged.headers["X-Poprules-Snapshot-Version"] == "3"
    redeem(plane, merchant, "welcome", codes[1], BOB)
    newer = plane.call("GET", url, secret, headers={"If-None-Match": pulled.headers["ETag"]})
    assert newer.status_code == 200 and newer.headers["X-Poprules-Snapshot-Version"] == "4"

    # the PoP quotes with it: issued codes are known, spent ones are spent
    release = api.load_release(bundle)
    redemptions = Redemptions.from_snapshot(newer.data, release=release, merchant=merchant)
    request = release.read_request({"lines": [{"sku": "TEE-01", "qty": 1}],
                                    "coupons": [codes[2].lower(), "summer-24", "POP-ZZZZZZ"],
                                    "at": "2026-07-04T10:00:00Z"})
    statuses = [c["status"] for c in release.quote(request, redemptions=redemptions)["coupons"]]
    assert statuses == ["valid", "spent", "unknown"]
    for_alice = release.quote(request, redemptions=redemptions, customer_hash=ALICE)
    assert for_alice["coupons"][0]["status"] == "spent"

    # the merchant's view is the same document
    view = plane.call("GET", f"/v1/merchants/{merchant}/redemptions", account.token).get_json()
    assert (view["version"], view["digest"], view["key_id"]) == \
        (4, snapshots(plane, merchant)[-1].digest, key["key_id"])
    assert view["snapshot"] == json.loads(newer.data)
    assert view["signature"] == newer.headers["X-Poprules-Signature"]


def test_a_pop_sees_only_its_own_merchants_snapshot(plane: Plane) -> None:
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    alpha_pop, alpha_secret = enroll(plane, alpha.merchant_id)
    beta_pop, beta_secret = enroll(plane, beta.merchant_id)
    add_version(plane, alpha.merchant_id)
    go_live(plane, alpha.merchant_id, 1)
    assert plane.call("GET", f"/v1/pops/{alpha_pop}/redemptions",
                      alpha_secret).status_code == 200
    assert plane.call("GET", f"/v1/pops/{beta_pop}/redemptions", beta_secret).status_code == 404
    wrong = plane.call("GET", f"/v1/pops/{alpha_pop}/redemptions", beta_secret)
    assert (wrong.status_code, error_of(wrong)["field"]) == (403, "pop_id")
    for credential in (None, alpha.token, alpha_secret + "x"):
        assert plane.call("GET", f"/v1/pops/{alpha_pop}/redemptions",
                          credential).status_code == 401
    read_only = plane.token(alpha.merchant_id, "read")
    assert issue(plane, alpha.merchant_id, read_only).status_code == 403
    assert issue(plane, beta.merchant_id, alpha.token).status_code == 403
