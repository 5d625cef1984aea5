"""PoPs: enrollment with a one-time secret, rollout groups, and the release pull (ETag, 304,
signature headers), with who may call what."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from nacl.signing import SigningKey as PrivateKey
from sqlalchemy import event, select, update

from control_plane.pops import live_release_head
from control_plane.releases import live_release
from control_plane.storage.models import (
    AuditEvent,
    EnrollmentToken,
    Pop,
    ProgramVersion,
    Release,
    Rollout,
    utcnow,
)
from tests.control_plane.conftest import Account, Plane, error_of

BUNDLE_MEDIA = "application/vnd.poprules.bundle+msgpack"
NO_RELEASE = "no release has been rolled out to this PoP's group yet"


def _public_key() -> str:
    return bytes(PrivateKey.generate().verify_key).hex()


def _enrollment_token(plane: Plane, account: Account, pop: str, **body: Any) -> dict[str, Any]:
    response = plane.call("POST", f"/v1/merchants/{account.merchant_id}/enrollment-tokens",
                          account.token, json={"pop": pop, **body})
    assert response.status_code == 201, response.get_json()
    made: dict[str, Any] = response.get_json()
    return made


def _enroll(plane: Plane, secret: str, public_key: str | None = None) -> Any:
    return plane.call("POST", "/v1/pops/enroll",
                      json={"enrollment_token": secret, "public_key": public_key or _public_key()})


@dataclass
class Enrolled:
    pop_id: int
    token: str


def _pop(plane: Plane, account: Account, name: str, group: str = "default") -> Enrolled:
    secret = _enrollment_token(plane, account, name, group=group)["token"]
    body = _enroll(plane, secret).get_json()
    return Enrolled(body["pop_id"], body["token"])


def _release(plane: Plane, merchant_id: int, number: int, groups: Sequence[str] = ("*",)
             ) -> tuple[str, bytes]:
    """A release row as publishing would leave it (the bundle's bytes are a stand-in: the
    pull serves them as stored), rolled out to `groups`; (release hash, bundle)."""
    bundle = f"bundle {number} of merchant {merchant_id}".encode()
    release_hash = "sha256:" + hashlib.sha256(bundle).hexdigest()
    with plane.state.db.session() as session:
        version = ProgramVersion(merchant_id=merchant_id, number=number, program_name="p",
                                 program="program: p", program_format="yaml", catalog="[]",
                                 catalog_format="json", samples=[])
        session.add(version)
        session.flush()
        release = Release(merchant_id=merchant_id, number=number, version_id=version.id,
                          release_hash=release_hash, key_id="0123456789abcdef",
                          signature=f"{number:02x}" * 64, bundle=bundle)
        session.add(release)
        session.flush()
        session.add_all(Rollout(merchant_id=merchant_id, release_id=release.id, group=group)
                        for group in groups)
        session.commit()
    return release_hash, bundle


def _pull(plane: Plane, pop: Enrolled, **headers: str) -> Any:
    return plane.call("GET", f"/v1/pops/{pop.pop_id}/release", pop.token,
                      headers={k.replace("_", "-"): v for k, v in headers.items()})


def _events(plane: Plane, kind: str) -> list[AuditEvent]:
    with plane.state.db.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.kind == kind)
                                    .order_by(AuditEvent.id)))


# -- enrollment --------------------------------------------------------------------------------


def test_enrollment_token_is_shown_once_and_stored_hashed(plane: Plane) -> None:
    account = plane.merchant("alpha")
    before = utcnow()
    response = plane.call("POST", f"/v1/merchants/{account.merchant_id}/enrollment-tokens",
                          account.token, json={"pop": "market-stall", "expires_in": 3600})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    made = response.get_json()
    assert set(made) == {"id", "pop", "group", "expires_at", "token"}
    assert (made["pop"], made["group"]) == ("market-stall", "default")
    assert re.fullmatch(r"pre_[A-Za-z0-9_-]{43}", made["token"])
    with plane.state.db.session() as session:
        row = session.get(EnrollmentToken, made["id"])
        assert row is not None
        assert row.token_hash == hashlib.sha256(made["token"].encode()).hexdigest()
        assert (row.pop_name, row.group, row.used_at, row.pop_id) == \
            ("market-stall", "default", None, None)
        assert row.created_by_token_id == account.token_id
        assert timedelta(seconds=3599) < row.expires_at - before < timedelta(seconds=3601)
    [created] = _events(plane, "pop.enrollment_token.created")
    assert created.actor_token_id == account.token_id
    assert created.details == {"enrollment_token_id": made["id"], "pop": "market-stall",
                               "group": "default", "expires_at": made["expires_at"]}
    assert made["token"] not in str(created.details)


def test_enroll_trades_the_secret_for_a_pop(plane: Plane) -> None:
    account = plane.merchant("alpha")
    made = _enrollment_token(plane, account, "edge-1", group="canary")
    key = _public_key()
    response = _enroll(plane, made["token"], key.upper())  # hex in either case
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert re.fullmatch(r"prp_[A-Za-z0-9_-]{43}", body["token"])
    assert {k: v for k, v in body.items() if k != "token"} == {
        "pop_id": body["pop_id"], "merchant_id": account.merchant_id, "name": "edge-1",
        "group": "canary"}
    with plane.state.db.session() as session:
        pop = session.get(Pop, body["pop_id"])
        assert pop is not None
        assert (pop.merchant_id, pop.name, pop.group, pop.public_key, pop.last_seen_at) == \
            (account.merchant_id, "edge-1", "canary", key, None)
        assert pop.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
        row = session.get(EnrollmentToken, made["id"])
        assert row is not None and row.used_at is not None and row.pop_id == pop.id
    [enrolled] = _events(plane, "pop.enrolled")
    assert (enrolled.merchant_id, enrolled.actor_token_id) == \
        (account.merchant_id, account.token_id)  # the token that allowed it
    assert enrolled.details == {"pop_id": body["pop_id"], "name": "edge-1", "group": "canary",
                                "public_key": key, "enrollment_token_id": made["id"]}
    # its secret works: nothing rolled out yet
    pulled = _pull(plane, Enrolled(body["pop_id"], body["token"]))
    assert pulled.status_code == 404
    assert error_of(pulled) == {"field": None, "message": NO_RELEASE}


def test_an_enrollment_token_works_once(plane: Plane) -> None:
    account = plane.merchant("alpha")
    secret = _enrollment_token(plane, account, "edge-1")["token"]
    assert _enroll(plane, secret).status_code == 201
    again = _enroll(plane, secret)
    assert again.status_code == 401
    assert error_of(again) == {"field": "enrollment_token", "message":
                               "this enrollment token has been used already; make a new one"}
    with plane.state.db.session() as session:
        assert len(session.scalars(select(Pop)).all()) == 1


def test_an_expired_enrollment_token_is_401_and_stays_unused(plane: Plane) -> None:
    account = plane.merchant("alpha")
    made = _enrollment_token(plane, account, "edge-1")
    with plane.state.db.session() as session:
        session.execute(update(EnrollmentToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    response = _enroll(plane, made["token"])
    assert response.status_code == 401
    assert error_of(response)["message"] == "this enrollment token has expired; make a new one"
    with plane.state.db.session() as session:
        assert session.scalars(select(Pop)).all() == []
        row = session.get(EnrollmentToken, made["id"])
        assert row is not None and row.used_at is None


@pytest.mark.parametrize("secret", ["pre_" + "A" * 43, "", "prt_" + "A" * 43, "prp_x"])
def test_an_unknown_enrollment_token_is_401(plane: Plane, secret: str) -> None:
    account = plane.merchant("alpha")
    real = _enrollment_token(plane, account, "edge-1")["token"]
    for wrong in (secret, real + "x", real[:-1]):
        response = _enroll(plane, wrong)
        assert response.status_code == 401
        assert error_of(response) == {"field": "enrollment_token",
                                      "message": "unknown enrollment token"}
    # a merchant's own API token is no enrollment token either
    assert _enroll(plane, account.token).status_code == 401


def test_racing_enrollments_with_one_token_make_one_pop(plane: Plane) -> None:
    account = plane.merchant("alpha")
    secret = _enrollment_token(plane, account, "edge-1")["token"]
    racers = 6
    barrier = threading.Barrier(racers)
    statuses: list[int] = []

    def race() -> None:
        client = plane.app.test_client()
        barrier.wait()
        response = client.post("/v1/pops/enroll", json={"enrollment_token": secret,
                                                        "public_key": _public_key()})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [401] * (racers - 1)
    with plane.state.db.session() as session:
        [pop] = session.scalars(select(Pop)).all()
        [row] = session.scalars(select(EnrollmentToken)).all()
        assert row.pop_id == pop.id
    assert len(_events(plane, "pop.enrolled")) == 1


def test_a_name_enrolled_already_is_409(plane: Plane) -> None:
    account = plane.merchant("alpha")
    first = _enrollment_token(plane, account, "edge-1")["token"]
    second = _enrollment_token(plane, account, "edge-1", group="canary")
    assert _enroll(plane, first).status_code == 201
    conflict = _enroll(plane, second["token"])
    assert conflict.status_code == 409
    assert "edge-1" in error_of(conflict)["message"]
    with plane.state.db.session() as session:
        assert len(session.scalars(select(Pop)).all()) == 1
        row = session.get(EnrollmentToken, second["id"])
        assert row is not None and row.used_at is None  # not spent on a refusal
    # and no new token is made for it
    refused = plane.call("POST", f"/v1/merchants/{account.merchant_id}/enrollment-tokens",
                         account.token, json={"pop": "edge-1"})
    assert refused.status_code == 409 and error_of(refused)["field"] == "pop"
    # another merchant may use the name
    beta = plane.merchant("beta")
    assert _enroll(plane, _enrollment_token(plane, beta, "edge-1")["token"]).status_code == 201


@pytest.mark.parametrize("public_key", [
    None, 7, "", "ab" * 31, "ab" * 33, "zz" * 32,
    "00" * 32,  # y = 0: a point of order 4
    "01" + "00" * 31,  # the identity: anyone could "sign" for it
    "02" + "00" * 31,  # not on the curve
    "ec" + "ff" * 30 + "7f",  # y = -1: a point of order 2
    "ed" + "ff" * 30 + "7f",  # y = p: not a canonical encoding
])
def test_a_bad_public_key_is_422_and_spends_nothing(plane: Plane, public_key: Any) -> None:
    account = plane.merchant("alpha")
    secret = _enrollment_token(plane, account, "edge-1")["token"]
    body = {"enrollment_token": secret}
    if public_key is not None:
        body["public_key"] = public_key
    response = plane.call("POST", "/v1/pops/enroll", json=body)
    assert response.status_code == 422
    assert error_of(response)["field"] == "public_key"
    assert _enroll(plane, secret).status_code == 201


def test_without_a_live_secret_the_key_is_not_looked_at(plane: Plane) -> None:
    response = plane.call("POST", "/v1/pops/enroll",
                          json={"enrollment_token": "pre_" + "A" * 43, "public_key": "zz"})
    assert response.status_code == 401
    assert error_of(response)["field"] == "enrollment_token"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "enrollment_token"),
    ({"enrollment_token": "pre_x"}, "public_key"),
    ({"enrollment_token": 5, "public_key": "ab" * 32}, "enrollment_token"),
    ({"enrollment_token": "pre_x", "public_key": "ab" * 32, "group": "x"}, "group"),
])
def test_a_bad_enroll_body_is_422(plane: Plane, body: dict[str, Any], field: str) -> None:
    response = plane.call("POST", "/v1/pops/enroll", json=body)
    assert response.status_code == 422 and error_of(response)["field"] == field


@pytest.mark.parametrize(("body", "field"), [
    ({}, "pop"),
    ({"pop": ""}, "pop"),
    ({"pop": "Edge-1"}, "pop"),
    ({"pop": "edge 1"}, "pop"),
    ({"pop": "x" * 65}, "pop"),
    ({"pop": 5}, "pop"),
    ({"pop": "edge", "group": "*"}, "group"),
    ({"pop": "edge", "group": ""}, "group"),
    ({"pop": "edge", "group": None}, "group"),
    ({"pop": "edge", "expires_in": 59}, "expires_in"),
    ({"pop": "edge", "expires_in": 30 * 86400 + 1}, "expires_in"),
    ({"pop": "edge", "expires_in": "3600"}, "expires_in"),
    ({"pop": "edge", "expires_in": True}, "expires_in"),
    ({"pop": "edge", "expires_in": 3600.0}, "expires_in"),
    ({"pop": "edge", "name": "edge"}, "name"),
])
def test_a_bad_enrollment_token_request_is_422(plane: Plane, body: dict[str, Any],
                                               field: str) -> None:
    account = plane.merchant("alpha")
    response = plane.call("POST", f"/v1/merchants/{account.merchant_id}/enrollment-tokens",
                          account.token, json=body)
    assert response.status_code == 422 and error_of(response)["field"] == field
    with plane.state.db.session() as session:
        assert session.scalars(select(EnrollmentToken)).all() == []


def test_the_longest_names_and_lifetime_are_accepted(plane: Plane) -> None:
    account = plane.merchant("alpha")
    made = _enrollment_token(plane, account, "a" * 64, group="b_-9" * 16,
                             expires_in=30 * 86400)
    assert (made["pop"], made["group"]) == ("a" * 64, "b_-9" * 16)


# -- who may call -------------------------------------------------------------------------


def test_the_release_pull_needs_the_pops_own_secret(plane: Plane) -> None:
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    mine, sibling = _pop(plane, alpha, "edge-1"), _pop(plane, alpha, "edge-2")
    foreign = _pop(plane, beta, "edge-1")
    path = f"/v1/pops/{mine.pop_id}/release"
    for header in (None, "Bearer", f"Basic {mine.token}", mine.token, f"Bearer {alpha.token}",
                   "Bearer prp_" + "A" * 43, f"Bearer {mine.token}x"):
        headers = {} if header is None else {"Authorization": header}
        response = plane.call("GET", path, headers=headers)
        assert response.status_code == 401, header
        assert error_of(response)["field"] == "authorization"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for other in (sibling, foreign):
        response = plane.call("GET", path, other.token)
        assert response.status_code == 403 and error_of(response)["field"] == "pop_id"
    assert plane.call("GET", path, mine.token).status_code == 404  # allowed: nothing rolled out


def test_merchant_endpoints_check_scope_and_merchant(plane: Plane) -> None:
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    betas = _pop(plane, beta, "edge-1")
    reader = plane.token(alpha.merchant_id, "read")
    publisher = plane.token(alpha.merchant_id, "publish")
    m = alpha.merchant_id
    tokens_path, pops_path = f"/v1/merchants/{m}/enrollment-tokens", f"/v1/merchants/{m}/pops"
    calls = [("POST", tokens_path, {"pop": "edge-9"}, "publish"),
             ("GET", pops_path, None, "read"),
             ("PATCH", f"{pops_path}/{betas.pop_id}", {"group": "canary"}, "publish")]
    for method, path, body, scope in calls:
        assert plane.call(method, path, json=body).status_code == 401
        wrong = reader if scope == "publish" else publisher
        refused = plane.call(method, path, wrong, json=body)
        assert refused.status_code == 403
        assert error_of(refused)["message"] == f"this token does not have the {scope} scope"
        other = plane.call(method, path.replace(f"/{m}/", f"/{beta.merchant_id}/"),
                           alpha.token, json=body)
        assert other.status_code == 403 and error_of(other)["field"] == "merchant_id"
    # another merchant's PoP through one's own path: not found, and not moved
    moved = plane.call("PATCH", f"{pops_path}/{betas.pop_id}", alpha.token,
                       json={"group": "canary"})
    assert moved.status_code == 404 and error_of(moved)["field"] == "pop_id"
    listed = plane.call("GET", f"/v1/merchants/{beta.merchant_id}/pops", beta.token)
    assert [p["group"] for p in listed.get_json()["pops"]] == ["default"]


# -- the release pull ----------------------------------------------------------------------


def test_pull_serves_the_signed_bundle_then_304(plane: Plane) -> None:
    account = plane.merchant("alpha")
    pop = _pop(plane, account, "edge-1")
    release_hash, bundle = _release(plane, account.merchant_id, 1)
    response = _pull(plane, pop)
    assert response.status_code == 200
    assert response.data == bundle
    assert response.headers["Content-Type"] == BUNDLE_MEDIA
    assert response.headers["ETag"] == f'"{release_hash}"'
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Poprules-Release"] == "1"
    assert response.headers["X-Poprules-Release-Hash"] == release_hash
    assert response.headers["X-Poprules-Key-Id"] == "0123456789abcdef"
    assert response.headers["X-Poprules-Signature"] == "01" * 64

    etag = response.headers["ETag"]
    for match in (etag, f"W/{etag}", f'"sha256:{"0" * 64}", {etag}', "*"):
        unchanged = _pull(plane, pop, If_None_Match=match)
        assert unchanged.status_code == 304, match
        assert unchanged.data == b""
        assert "Content-Type" not in unchanged.headers
        assert unchanged.headers["ETag"] == etag
        assert unchanged.headers["X-Poprules-Release"] == "1"
    for other in (f'"sha256:{"0" * 64}"', f'W/"{release_hash}x"', f'"{release_hash.upper()}"'):
        assert _pull(plane, pop, If_None_Match=other).status_code == 200, other

    newer_hash, newer = _release(plane, account.merchant_id, 2)
    changed = _pull(plane, pop, If_None_Match=etag)
    assert changed.status_code == 200 and changed.data == newer
    assert changed.headers["ETag"] == f'"{newer_hash}"'
    assert changed.headers["X-Poprules-Release"] == "2"


@contextmanager
def _statements(plane: Plane) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    engine = plane.state.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_304_never_reads_the_bundle(plane: Plane) -> None:
    account = plane.merchant("alpha")
    pop = _pop(plane, account, "edge-1")
    release_hash, _ = _release(plane, account.merchant_id, 1)
    _pull(plane, pop)  # the first poll has written last_seen_at
    with _statements(plane) as unchanged:
        assert _pull(plane, pop, If_None_Match=f'"{release_hash}"').status_code == 304
    assert unchanged and not any("bundle" in s for s in unchanged)
    assert not any(s.lstrip().upper().startswith("UPDATE") for s in unchanged)
    with _statements(plane) as fetched:
        assert _pull(plane, pop).status_code == 200
    assert any("bundle" in s for s in fetched)


def test_last_seen_is_written_at_most_once_a_minute(plane: Plane) -> None:
    account = plane.merchant("alpha")
    pop = _pop(plane, account, "edge-1")

    def last_seen() -> Any:
        pops = plane.call("GET", f"/v1/merchants/{account.merchant_id}/pops",
                          account.token).get_json()["pops"]
        return pops[0]["last_seen_at"]

    assert last_seen() is None
    _pull(plane, pop)  # a 404 is a call too
    first = last_seen()
    assert first is not None
    _pull(plane, pop)
    assert last_seen() == first
    with plane.state.db.session() as session:
        session.execute(update(Pop).values(last_seen_at=utcnow() - timedelta(seconds=61)))
        session.commit()
    stale = last_seen()
    _pull(plane, pop)
    assert last_seen() > stale


def test_a_pop_runs_its_groups_release_or_every_pops(plane: Plane) -> None:
    account = plane.merchant("alpha")
    canary, steady = _pop(plane, account, "edge-1", "canary"), _pop(plane, account, "edge-2")

    def number(pop: Enrolled) -> str:
        response = _pull(plane, pop)
        assert response.status_code == 200
        return str(response.headers["X-Poprules-Release"])

    _release(plane, account.merchant_id, 1, ["canary"])
    assert number(canary) == "1" and _pull(plane, steady).status_code == 404
    _release(plane, account.merchant_id, 2, ["*"])
    assert (number(canary), number(steady)) == ("2", "2")
    _release(plane, account.merchant_id, 3, ["canary"])
    assert (number(canary), number(steady)) == ("3", "2")
    _release(plane, account.merchant_id, 4, ["other-group"])
    assert (number(canary), number(steady)) == ("3", "2")

    moved = plane.call("PATCH", f"/v1/merchants/{account.merchant_id}/pops/{steady.pop_id}",
                       account.token, json={"group": "canary"})
    assert moved.status_code == 200 and moved.get_json()["group"] == "canary"
    assert number(steady) == "3"

    # the pull's bundle-less lookup and releases.live_release agree
    with plane.state.db.session() as session:
        for group in ("canary", "default", "other-group", "nobody"):
            live = live_release(session, account.merchant_id, group)
            head = live_release_head(session, account.merchant_id, group)
            assert live is not None and head is not None
            assert (head.id, head.number, head.release_hash, head.key_id, head.signature) == \
                (live.id, live.number, live.release_hash, live.key_id, live.signature)
        assert live_release_head(session, account.merchant_id + 1, "canary") is None


def test_another_merchants_release_is_never_served(plane: Plane) -> None:
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    pop = _pop(plane, alpha, "edge-1")
    _release(plane, beta.merchant_id, 1)
    assert _pull(plane, pop).status_code == 404
    _, bundle = _release(plane, alpha.merchant_id, 1)
    assert _pull(plane, pop).data == bundle


# -- listing and moving ----------------------------------------------------------------------


def test_list_and_move_pops(plane: Plane) -> None:
    account = plane.merchant("alpha")
    key = _public_key()
    first = _enroll(plane, _enrollment_token(plane, account, "edge-1")["token"], key).get_json()
    second = _pop(plane, account, "edge-2", "canary")
    path = f"/v1/merchants/{account.merchant_id}/pops"
    pops = plane.call("GET", path, account.token).get_json()["pops"]
    assert [(p["id"], p["name"], p["group"]) for p in pops] == \
        [(first["pop_id"], "edge-1", "default"), (second.pop_id, "edge-2", "canary")]
    assert set(pops[0]) == {"id", "name", "group", "public_key", "enrolled_at", "last_seen_at"}
    assert pops[0]["public_key"] == key and pops[0]["last_seen_at"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", pops[0]["enrolled_at"])
    assert first["token"] not in plane.call("GET", path, account.token).get_data(as_text=True)

    moved = plane.call("PATCH", f"{path}/{first['pop_id']}", account.token,
                       json={"group": "canary"})
    assert moved.status_code == 200
    assert moved.get_json() == {**pops[0], "group": "canary"}
    again = plane.call("PATCH", f"{path}/{first['pop_id']}", account.token,
                       json={"group": "canary"})
    assert again.get_json() == moved.get_json()
    [event_row] = _events(plane, "pop.moved")  # no change, no event
    assert event_row.actor_token_id == account.token_id
    assert event_row.details == {"pop_id": first["pop_id"], "name": "edge-1",
                                 "previous_group": "default", "group": "canary"}


@pytest.mark.parametrize(("body", "field"), [
    ({}, "group"), ({"group": "*"}, "group"), ({"group": "Canary"}, "group"),
    ({"group": "canary", "name": "x"}, "name"),
])
def test_a_bad_move_is_422(plane: Plane, body: dict[str, Any], field: str) -> None:
    account = plane.merchant("alpha")
    pop = _pop(plane, account, "edge-1")
    response = plane.call("PATCH", f"/v1/merchants/{account.merchant_id}/pops/{pop.pop_id}",
                          account.token, json=body)
    assert response.status_code == 422 and error_of(response)["field"] == field


def test_moving_an_unknown_pop_is_404(plane: Plane) -> None:
    account = plane.merchant("alpha")
    for pop_id in (999, 2**31 - 1, 2**31, 2**63, 10**30):
        response = plane.call("PATCH", f"/v1/merchants/{account.merchant_id}/pops/{pop_id}",
                              account.token, json={"group": "canary"})
        assert response.status_code == 404
        # past the id column's range, the route itself answers (no such resource)
        assert error_of(response)["field"] == ("pop_id" if pop_id < 2**31 else None)
