"""The wallet, claim and throttle endpoints: what a merchant's back end sees and may do, that
a claim credits once however many race, that throttles hold or refuse with their reason, and
that a shop's raw id of a shopper is never kept."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from control_plane.storage.models import AuditEvent, Base, ClaimToken
from tests.control_plane.conftest import Account, Plane, error_of
from tests.control_plane.test_ledger import (
    AT,
    LAPSES,
    TOWARD,
    VESTS,
    assert_balanced,
    cashback,
    customer_of,
    refund,
    sale,
    seed_claim,
    store,
)

SUBJECT = "shopper-raw-7731"


def _wallet(plane: Plane, account: Account, customer: str, **query: Any) -> dict[str, Any]:
    response = plane.call("GET", f"/v1/wallets/{customer}", account.token, query_string=query)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _claim(plane: Plane, account: Account, token: str, subject: str = SUBJECT,
           **extra: Any) -> Any:
    return plane.call("POST", "/v1/claims", account.token,
                      json={"claim_token": token, "subject": subject, **extra})


def _clock(plane: Plane, moment: datetime) -> None:
    plane.app.config["POPRULES_CLOCK"] = lambda: moment


def test_cashback_is_pending_then_available_then_lapsing_then_lapsed(plane: Plane) -> None:
    account = plane.merchant("corner")
    shopper = customer_of(plane, account.merchant_id, SUBJECT)
    sale_id, _ = store(plane, account.merchant_id, sale(
        customer=shopper, wallet=[cashback("pickup-boost", 400)], points=43,
        credits=[{"rule": "socks", "amount": 300, "toward": TOWARD,
                  "lapses_at": "2026-07-18T10:00:00Z"}]))
    entry = {"rule": "pickup-boost", "amount": 400, "vests_at": "2026-08-03T10:00:00.000000Z",
             "lapses_at": "2027-08-03T10:00:00.000000Z"}
    pending = _wallet(plane, account, shopper, at="2026-07-05T00:00:00Z")
    assert pending == {
        "customer": shopper, "at": "2026-07-05T00:00:00.000000Z", "available": 0,
        "pending": [entry], "lapsing_soon": [], "lapsed": 0,
        "credits": [{"toward": TOWARD, "amount": 300,
                     "lapses_at": "2026-07-18T10:00:00.000000Z"}],
        "points": 43, "history": pending["history"], "next": None}
    assert [(h["kind"], h["account"], h["amount"], h["receipt"]) for h in pending["history"]] \
        == [("points", "points", 43, sale_id), ("credit", "credit", 300, sale_id),
            ("cashback", "wallet", 400, sale_id)]

    available = _wallet(plane, account, shopper, at=VESTS)
    assert (available["available"], available["pending"], available["lapsing_soon"],
            available["credits"]) == (400, [], [], [])  # the credit lapsed on 18 July
    soon = _wallet(plane, account, shopper, at="2027-07-30T10:00:00+00:00")
    assert (soon["available"], soon["lapsing_soon"]) == (400, [entry])
    lapsed = _wallet(plane, account, shopper, at=LAPSES)
    assert (lapsed["available"], lapsed["lapsed"], lapsed["points"]) == (0, 400, 43)

    # without ?at=, the app's clock decides
    _clock(plane, datetime(2026, 9, 1, tzinfo=UTC))
    assert _wallet(plane, account, shopper)["available"] == 400
    _clock(plane, datetime(2026, 7, 10, tzinfo=UTC))
    now = _wallet(plane, account, shopper)
    assert (now["at"], now["available"], len(now["pending"])) == (
        "2026-07-10T00:00:00.000000Z", 0, 1)

    # a refund shows, negative, and lowers what is pending
    store(plane, account.merchant_id, refund(sale_id, [("pickup-boost", 69)]))
    after = _wallet(plane, account, shopper)
    assert after["pending"] == [{**entry, "amount": 331}]
    assert after["history"][0]["kind"] == "reversal" and after["history"][0]["amount"] == -69


def test_history_is_paged_newest_first(plane: Plane) -> None:
    account = plane.merchant("corner")
    shopper = customer_of(plane, account.merchant_id, SUBJECT)
    for amount in (1, 2, 3, 4, 5):
        store(plane, account.merchant_id, sale(customer=shopper,
                                               wallet=[cashback("a", amount)]))
    first = _wallet(plane, account, shopper, limit=2)
    assert [h["amount"] for h in first["history"]] == [5, 4]
    second = _wallet(plane, account, shopper, limit=2, after=first["next"])
    third = _wallet(plane, account, shopper, limit=2, after=second["next"])
    assert [h["amount"] for h in second["history"] + third["history"]] == [3, 2, 1]
    assert third["next"] is None


def test_a_lookup_by_the_shops_id_is_the_wallet_of_its_hash(plane: Plane) -> None:
    account = plane.merchant("corner")
    other = plane.merchant("other")
    shopper = customer_of(plane, account.merchant_id, SUBJECT)
    store(plane, account.merchant_id, sale(customer=shopper, wallet=[cashback("a", 400)]))
    looked = plane.call("POST", "/v1/wallets/lookup", account.token, json={"subject": SUBJECT},
                        query_string={"at": VESTS})
    assert looked.status_code == 200
    assert looked.get_json() == _wallet(plane, account, shopper, at=VESTS)
    assert looked.get_json()["available"] == 400
    # another merchant's hash of the same id is another customer, with nothing
    theirs = plane.call("POST", "/v1/wallets/lookup", other.token, json={"subject": SUBJECT},
                        query_string={"at": VESTS}).get_json()
    assert theirs["customer"] != shopper and theirs["available"] == 0


def test_a_claim_moves_the_cashback_once(plane: Plane) -> None:
    account = plane.merchant("corner")
    sale_id = seed_claim(plane, account.merchant_id, "1-1.secret")
    shopper = customer_of(plane, account.merchant_id, SUBJECT)
    _clock(plane, AT + timedelta(hours=1))
    claimed = _claim(plane, account, "1-1.secret", device="cd" * 32)
    assert claimed.status_code == 200, claimed.get_json()
    assert claimed.get_json() == {
        "customer": shopper, "receipt": sale_id, "amount": 400,
        "entries": [{"rule": "pickup-boost", "amount": 400,
                     "vests_at": "2026-08-03T10:00:00.000000Z",
                     "lapses_at": "2027-08-03T10:00:00.000000Z"}]}
    wallet = _wallet(plane, account, shopper)
    assert wallet["pending"] == claimed.get_json()["entries"]
    assert wallet["history"][0] | {"id": 0} == {
        "id": 0, "kind": "claim", "account": "wallet", "amount": 400, "receipt": sale_id,
        "at": "2026-07-04T11:00:00.000000Z"}

    again = _claim(plane, account, "1-1.secret", subject="someone-else")
    assert again.status_code == 409 and error_of(again)["field"] == "claim_token"
    assert _wallet(plane, account, shopper)["pending"] == wallet["pending"]
    unknown = _claim(plane, account, "1-2.never-issued")
    assert unknown.status_code == 404 and error_of(unknown)["field"] == "claim_token"
    assert_balanced(plane, account.merchant_id)
    with plane.state.db.session() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.kind == "claim.booked"))
        [row] = session.scalars(select(ClaimToken))
    assert event.details | {"journal": 0} == {"claim": row.token_hash, "customer": shopper,
                                              "device": "cd" * 32, "amount": 400, "journal": 0}
    assert (row.claimed_by, row.claimed_at) == (shopper, AT + timedelta(hours=1))


def test_a_claim_raced_by_many_credits_once(plane: Plane) -> None:
    account = plane.merchant("corner")
    seed_claim(plane, account.merchant_id, "1-1.secret")
    racers = 6
    start = threading.Barrier(racers)
    statuses: list[int] = []

    def race(i: int) -> None:
        client = plane.app.test_client()
        start.wait()
        response = client.post("/v1/claims", headers={"Authorization": f"Bearer {account.token}"},
                               json={"claim_token": "1-1.secret", "subject": f"racer-{i}"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * (racers - 1)
    credited = [_wallet(plane, account, customer_of(plane, account.merchant_id, f"racer-{i}"),
                        at=VESTS)["available"] for i in range(racers)]
    assert sorted(credited) == [0] * (racers - 1) + [400]
    assert_balanced(plane, account.merchant_id)


def test_claims_over_a_throttle_are_refused_and_may_be_retried(plane: Plane) -> None:
    account = plane.merchant("corner")
    base = f"/v1/merchants/{account.merchant_id}/throttles"
    put = plane.call("PUT", base, account.token, json={
        "customer": {"window": 3600, "max_claims": 1}, "device": {"window": 60, "max_claims": 1}})
    assert put.status_code == 200
    for n in (1, 2, 3):
        seed_claim(plane, account.merchant_id, f"1-{n}.secret")
    _clock(plane, AT)
    assert _claim(plane, account, "1-1.secret", device="aa" * 32).status_code == 200

    refused = _claim(plane, account, "1-2.secret")
    assert refused.status_code == 429
    assert error_of(refused) == {"field": None, "message": (
        "throttle customer.max_claims: 1 in the last 3600 s and 1 more would pass 1")}
    by_device = _claim(plane, account, "1-3.secret", subject="someone-else", device="aa" * 32)
    assert by_device.status_code == 429 and "device.max_claims" in error_of(by_device)["message"]
    shopper = customer_of(plane, account.merchant_id, SUBJECT)
    assert _wallet(plane, account, shopper, at=VESTS)["available"] == 400  # nothing moved
    with plane.state.db.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.kind == "claim.refused")
                                 .order_by(AuditEvent.id)).all()
        unclaimed = session.scalars(select(ClaimToken.token_hash)
                                    .where(ClaimToken.claimed_at.is_(None))).all()
    assert [e.details["reason"].split(":")[0] for e in events] == [
        "throttle customer.max_claims", "throttle device.max_claims"]
    assert len(unclaimed) == 2
    # later, the same claims go through
    _clock(plane, AT + timedelta(hours=1))
    assert _claim(plane, account, "1-2.secret").status_code == 200
    assert _claim(plane, account, "1-3.secret", subject="someone-else",
                  device="aa" * 32).status_code == 200
    assert _wallet(plane, account, shopper, at=VESTS)["available"] == 800


def test_a_claim_over_the_customers_amount_is_refused(plane: Plane) -> None:
    account = plane.merchant("corner")
    plane.call("PUT", f"/v1/merchants/{account.merchant_id}/throttles", account.token,
               json={"customer": {"window": 86400, "max_amount": 500}})
    shopper = customer_of(plane, account.merchant_id, SUBJECT)
    store(plane, account.merchant_id, sale(customer=shopper, wallet=[cashback("a", 200)]))
    seed_claim(plane, account.merchant_id, "1-9.secret", amount=301)
    _clock(plane, AT + timedelta(hours=1))
    refused = _claim(plane, account, "1-9.secret")
    assert refused.status_code == 429
    assert error_of(refused)["message"].startswith("throttle customer.max_amount: 200 ")


def test_throttles_are_replaced_whole_and_audited(plane: Plane) -> None:
    account = plane.merchant("corner")
    base = f"/v1/merchants/{account.merchant_id}/throttles"
    nothing = {"customer": None, "claim": None, "device": None}
    assert plane.call("GET", base, account.token).get_json() == nothing
    first = {"customer": {"window": 3600, "max_claims": 3, "max_amount": 5000},
             "claim": {"window": 60, "max_claims": None, "max_amount": 1000}}
    put = plane.call("PUT", base, account.token, json=first)
    assert put.get_json() == {**first, "device": None}
    assert plane.call("GET", base, account.token).get_json() == {**first, "device": None}
    second = {"device": {"window": 60, "max_claims": 2}}
    assert plane.call("PUT", base, account.token, json=second).status_code == 200
    assert plane.call("GET", base, account.token).get_json() == {
        **nothing, "device": {"window": 60, "max_claims": 2, "max_amount": None}}
    assert plane.call("PUT", base, account.token, json={}).get_json() == nothing
    with plane.state.db.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.kind == "throttle.set")
                                 .order_by(AuditEvent.id)).all()
    assert [e.details for e in events] == [
        {**first, "device": None},
        {**nothing, "device": {"window": 60, "max_claims": 2, "max_amount": None}}, nothing]
    assert {e.actor_token_id for e in events} == {account.token_id}


@pytest.mark.parametrize(("body", "field"), [
    ({"customer": {"max_claims": 1}}, "customer.window"),
    ({"customer": {"window": 0, "max_claims": 1}}, "customer.window"),
    ({"customer": {"window": 366 * 86400 + 1, "max_claims": 1}}, "customer.window"),
    ({"customer": {"window": True, "max_claims": 1}}, "customer.window"),
    ({"customer": {"window": 60}}, "customer"),
    ({"customer": {"window": 60, "max_claims": -1}}, "customer.max_claims"),
    ({"customer": {"window": 60, "max_claims": 2**31}}, "customer.max_claims"),
    ({"customer": {"window": 60, "max_amount": 1.5}}, "customer.max_amount"),
    ({"customer": {"window": 60, "max_amount": 1, "per": "day"}}, "customer.per"),
    ({"customer": []}, "customer"),
    ({"claim": {"window": 60, "max_claims": 1}}, "claim.max_claims"),
    ({"ip": {"window": 60, "max_claims": 1}}, "ip"),
])
def test_bad_throttles_are_422_and_change_nothing(plane: Plane, body: dict[str, Any],
                                                   field: str) -> None:
    account = plane.merchant("corner")
    base = f"/v1/merchants/{account.merchant_id}/throttles"
    kept = {"device": {"window": 60, "max_claims": 2}}
    plane.call("PUT", base, account.token, json=kept)
    response = plane.call("PUT", base, account.token, json=body)
    assert response.status_code == 422 and error_of(response)["field"] == field
    assert plane.call("GET", base, account.token).get_json()["device"]["max_claims"] == 2


@pytest.mark.parametrize(("method", "path", "body", "query", "field"), [
    ("GET", "/v1/wallets/" + "AB" * 32, None, {}, "customer"),
    ("GET", "/v1/wallets/" + "ab" * 31, None, {}, "customer"),
    ("GET", "/v1/wallets/" + "ab" * 32, None, {"at": "yesterday"}, "at"),
    ("GET", "/v1/wallets/" + "ab" * 32, None, {"at": "2026-07-04T10:00:00"}, "at"),
    ("GET", "/v1/wallets/" + "ab" * 32, None, {"at": "0056-01-09T22:55:48Z"}, "at"),
    ("GET", "/v1/wallets/" + "ab" * 32, None, {"at": "9999-12-31T00:00:00Z"}, "at"),
    ("GET", "/v1/wallets/" + "ab" * 32, None, {"limit": "0"}, "limit"),
    ("GET", "/v1/wallets/" + "ab" * 32, None, {"after": "x"}, "after"),
    ("POST", "/v1/wallets/lookup", {}, {}, "subject"),
    ("POST", "/v1/wallets/lookup", {"subject": ""}, {}, "subject"),
    ("POST", "/v1/wallets/lookup", {"subject": "s", "customer": "x"}, {}, "customer"),
    ("POST", "/v1/claims", {"subject": "s"}, {}, "claim_token"),
    ("POST", "/v1/claims", {"claim_token": "", "subject": "s"}, {}, "claim_token"),
    ("POST", "/v1/claims", {"claim_token": "t\u00e9", "subject": "s"}, {}, "claim_token"),
    ("POST", "/v1/claims", {"claim_token": "t"}, {}, "subject"),
    ("POST", "/v1/claims", {"claim_token": "t", "subject": 7}, {}, "subject"),
    ("POST", "/v1/claims", {"claim_token": "t", "subject": "s", "device": "d"}, {}, "device"),
])
def test_bad_input_is_422_naming_the_field(plane: Plane, method: str, path: str,
                                           body: Any, query: dict[str, str],
                                           field: str) -> None:
    account = plane.merchant("corner")
    response = plane.call(method, path, account.token, json=body, query_string=query)
    assert response.status_code == 422, response.get_json()
    assert error_of(response)["field"] == field


def test_who_may_call(plane: Plane) -> None:
    account = plane.merchant("corner")
    seed_claim(plane, account.merchant_id, "1-1.secret")
    reader = plane.token(account.merchant_id, "read")
    assert plane.call("POST", "/v1/claims", None, json={}).status_code == 401
    forbidden = plane.call("POST", "/v1/claims", reader,
                           json={"claim_token": "1-1.secret", "subject": SUBJECT})
    assert forbidden.status_code == 403
    assert plane.call("GET", "/v1/wallets/" + "ab" * 32, None).status_code == 401
    other = plane.merchant("other")
    assert plane.call("GET", f"/v1/merchants/{other.merchant_id}/throttles",
                      account.token).status_code == 403
    # a merchant cannot claim another's token: it is not theirs to know
    assert _claim(plane, other, "1-1.secret").status_code == 404
    assert _claim(plane, account, "1-1.secret").status_code == 200


def test_the_shops_raw_id_is_never_stored(plane: Plane) -> None:
    account = plane.merchant("corner")
    seed_claim(plane, account.merchant_id, "1-1.secret")
    plane.call("PUT", f"/v1/merchants/{account.merchant_id}/throttles", account.token,
               json={"customer": {"window": 60, "max_claims": 5}})
    issued = plane.call("POST", "/v1/customer-tokens", account.token,
                        json={"customer": {}, "subject": SUBJECT, "referrer": SUBJECT + "-f"})
    assert issued.status_code == 201
    assert _claim(plane, account, "1-1.secret").status_code == 200
    assert plane.call("POST", "/v1/wallets/lookup", account.token,
                      json={"subject": SUBJECT}).status_code == 200
    stored = []
    with plane.state.db.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                stored += [v.decode("utf-8", "replace") if isinstance(v, bytes) else repr(v)
                           for v in row]
    assert any(customer_of(plane, account.merchant_id, SUBJECT) in v for v in stored)
    assert not any("shopper-raw" in value for value in stored)
