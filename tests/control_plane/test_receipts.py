"""Receipt ingestion: a PoP's signed, chained receipts are verified, deduplicated, re-run on
the release they name and booked once; forged, altered, replayed, reordered and forked
receipts are refused or flagged, never booked twice or silently.

The receipts are built here as a PoP builds them: the real release (the bundle the control
plane published) quotes real requests, and the PoP's own Ed25519 key signs them."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from nacl.signing import SigningKey
from sqlalchemy import func, select

from control_plane.storage.models import (
    AuditEvent,
    Journal,
    Posting,
    Receipt,
    Redemption,
    RedemptionSnapshot,
    Throttle,
)
from edge_worker.core import checkout
from edge_worker.core.redemptions import Redemptions
from edge_worker.core.release import Release as RuleRelease
from poprules import api
from poprules import receipt as fmt
from poprules.bundle import normal_code_hash
from poprules.codes import normalize_code
from tests.control_plane.conftest import Account, Plane, error_of
from tests.control_plane.test_versions import draft, upload

ALICE, BOB = "a1" * 32, "b2" * 32
AT = "2026-07-04T09:30:00Z"
REQUEST: dict[str, Any] = {
    "lines": [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 2}, {"sku": "SOCK-3", "qty": 3}],
    "channel": "pos", "fulfillment": "pickup", "pop": "stall-1", "coupons": ["summer-24"],
    "customer": {"tier": "gold", "orders": 3, "tags": ["vip"], "referred": False},
    "prefer": "wallet", "at": AT}
PLAIN: dict[str, Any] = {**REQUEST, "coupons": []}


@dataclass
class Shop:
    plane: Plane
    account: Account
    release: RuleRelease
    number: int = 1

    def enroll(self, name: str) -> Stall:
        made = self.plane.call("POST", f"/v1/merchants/{self.account.merchant_id}"
                               "/enrollment-tokens", self.account.token, json={"pop": name})
        assert made.status_code == 201, made.get_json()
        key = SigningKey.generate()
        enrolled = self.plane.call("POST", "/v1/pops/enroll", json={
            "enrollment_token": made.get_json()["token"],
            "public_key": bytes(key.verify_key).hex()})
        assert enrolled.status_code == 201, enrolled.get_json()
        body = enrolled.get_json()
        return Stall(self, body["pop_id"], body["token"], key)


@dataclass(frozen=True)
class Signed:
    fields: dict[str, Any]
    body: bytes
    signature: str

    @property
    def id(self) -> str:
        return str(self.fields["id"])

    @property
    def digest(self) -> str:
        return fmt.digest(self.body)

    def item(self) -> dict[str, str]:
        return {"body": self.body.decode("utf-8"), "signature": self.signature}


@dataclass
class Stall:
    """A PoP as the tests drive it: it numbers, chains and signs its receipts."""

    shop: Shop
    pop_id: int
    token: str
    key: SigningKey
    seq: int = 0
    prev: str = fmt.GENESIS
    issued: dict[str, Signed] = field(default_factory=dict)

    def quote(self, request: dict[str, Any], spent: list[str]) -> dict[str, Any]:
        release = self.shop.release
        return release.quote(release.read_request(request),
                             spent=lambda normal: self.code_hash(normal) in spent,
                             with_release=False)

    def code_hash(self, code: str) -> str:
        return normal_code_hash(self.shop.release.bundle.coupons["key"], normalize_code(code))

    def sale_fields(self, request: dict[str, Any] = REQUEST, *, customer: str | None = ALICE,
                    spent: tuple[str, ...] = ()) -> dict[str, Any]:
        """A sale's own fields, as the PoP's checkout writes them."""
        hashes = sorted(self.code_hash(code) for code in spent)
        return {"kind": "sale", "release": {"number": self.shop.number,
                                            "hash": self.shop.release.hash},
                "request": request, "customer": customer, "quote": self.quote(request, hashes),
                "quote_id": f"q{self.seq + 1}", "claim": None, "snapshot": None,
                "spent": hashes}

    def sale(self, request: dict[str, Any] = REQUEST, *, customer: str | None = ALICE,
             spent: tuple[str, ...] = (), **overrides: Any) -> Signed:
        return self.issue({**self.sale_fields(request, customer=customer, spent=spent),
                           **overrides})

    def refund_fields(self, sale: Signed, lines: list[int]) -> dict[str, Any]:
        """A refund of `lines` of `sale`, its reversal as the PoP's checkout computes it."""
        return {"kind": "refund", "refund_of": sale.id, "lines": lines,
                "reversal": checkout.reversal(sale.fields["quote"], lines)}

    def refund(self, sale: Signed, refunded: list[int], **overrides: Any) -> Signed:
        return self.issue({**self.refund_fields(sale, refunded), **overrides})

    def issue(self, fields: dict[str, Any], *, seq: int | None = None,
              prev: str | None = None) -> Signed:
        """The next receipt of the chain (or one at `seq` after `prev`, to break it)."""
        number = self.seq + 1 if seq is None else seq
        whole = {"format": fmt.FORMAT, "id": fmt.receipt_id(self.pop_id, number),
                 "merchant": self.shop.account.merchant_id, "pop": self.pop_id, "seq": number,
                 "prev": self.prev if prev is None else prev, "at": 1_783_157_400, **fields}
        signed = self.sign(whole)
        if seq is None:
            self.seq, self.prev = number, signed.digest
        self.issued[signed.id] = signed
        return signed

    def sign(self, fields: dict[str, Any], key: SigningKey | None = None) -> Signed:
        body = fmt.encode(fields)
        signature = (key or self.key).sign(fmt.statement(body)).signature.hex()
        return Signed(fields, body, signature)

    def post(self, *receipts: Signed | dict[str, Any] | Any) -> Any:
        items = [r.item() if isinstance(r, Signed) else r for r in receipts]
        return self.shop.plane.call("POST", "/v1/receipts", self.token, json={"receipts": items})

    def results(self, *receipts: Signed | dict[str, Any] | Any) -> list[dict[str, Any]]:
        response = self.post(*receipts)
        assert response.status_code == 200, response.get_json()
        results: list[dict[str, Any]] = response.get_json()["results"]
        return results


def make_shop(plane: Plane, name: str = "corner") -> Shop:
    account = plane.merchant(name)
    assert upload(plane, account.merchant_id, account.token, draft()).status_code == 201
    published = plane.call("POST", f"/v1/merchants/{account.merchant_id}/releases",
                           account.token, json={"version": 1})
    assert published.status_code == 201, published.get_json()
    bundle = plane.call("GET", f"/v1/merchants/{account.merchant_id}/releases/1/bundle",
                        account.token)
    assert bundle.status_code == 200
    return Shop(plane, account, api.load_release(bundle.data))


@pytest.fixture
def shop(plane: Plane) -> Shop:
    return make_shop(plane)


@pytest.fixture
def stall(shop: Shop) -> Stall:
    return shop.enroll("stall-1")


def rows(plane: Plane, model: type[Any]) -> int:
    with plane.state.db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def stored(plane: Plane) -> dict[str, tuple[str, str | None]]:
    with plane.state.db.session() as session:
        return {r.receipt_id: (r.status, r.reason) for r in session.scalars(select(Receipt))}


def events(plane: Plane, kind: str) -> list[dict[str, Any]]:
    with plane.state.db.session() as session:
        return [e.details for e in session.scalars(
            select(AuditEvent).where(AuditEvent.kind == kind).order_by(AuditEvent.id))]


def journals_of(plane: Plane, receipt_id: str) -> list[str]:
    with plane.state.db.session() as session:
        return list(session.scalars(
            select(Journal.kind).join(Receipt, Receipt.id == Journal.receipt_id)
            .where(Receipt.receipt_id == receipt_id).order_by(Journal.id)))


def test_a_sale_is_booked_with_its_coupon_redeemed(shop: Shop, stall: Stall) -> None:
    sale = stall.sale()
    assert [c["status"] for c in sale.fields["quote"]["coupons"]] == ["valid"]
    assert stall.results(sale) == [{"id": sale.id, "status": "booked"}]
    assert stored(shop.plane) == {sale.id: ("booked", None)}
    assert {"cashback", "credit", "points"} <= set(journals_of(shop.plane, sale.id))
    with shop.plane.state.db.session() as session:
        row = session.scalar(select(Receipt))
        assert row is not None
        assert (row.body, row.signature, row.digest, row.customer, row.release_hash) == (
            sale.body, sale.signature, sale.digest, ALICE, shop.release.hash)
        redemption = session.scalar(select(Redemption))
        assert redemption is not None
        assert (redemption.set_id, redemption.code_hash, redemption.customer) == (
            "summer", stall.code_hash("SUMMER-24"), ALICE)
        snapshot = session.scalar(select(RedemptionSnapshot)
                                  .order_by(RedemptionSnapshot.version.desc()).limit(1))
        assert snapshot is not None and snapshot.version == 2  # refreshed once for the batch
        assert f'"spent_by_customer":{{"{ALICE}":["summer"]}}'.encode() in snapshot.body


def test_a_replay_answers_as_the_first_time_and_changes_nothing(shop: Shop,
                                                                stall: Stall) -> None:
    first, second = stall.sale(), stall.sale(PLAIN)
    assert [r["status"] for r in stall.results(first, second)] == ["booked", "booked"]
    counts = [rows(shop.plane, m) for m in (Receipt, Journal, Posting, Redemption, AuditEvent,
                                            RedemptionSnapshot)]
    replayed = [{"id": first.id, "status": "duplicate", "original": "booked"},
                {"id": second.id, "status": "duplicate", "original": "booked"}]
    assert stall.results(first, second) == replayed
    assert stall.results(second, first) == replayed[::-1]
    assert stall.results(first, first) == [replayed[0], replayed[0]]
    assert [rows(shop.plane, m) for m in (Receipt, Journal, Posting, Redemption, AuditEvent,
                                          RedemptionSnapshot)] == counts


def test_the_same_receipt_twice_in_one_batch_is_booked_once(shop: Shop, stall: Stall) -> None:
    sale = stall.sale()
    assert stall.results(sale, sale) == [
        {"id": sale.id, "status": "booked"},
        {"id": sale.id, "status": "duplicate", "original": "booked"}]
    assert rows(shop.plane, Redemption) == 1


def test_altered_amounts_with_a_valid_signature_are_flagged_not_booked(shop: Shop,
                                                                       stall: Stall) -> None:
    honest = stall.sale(PLAIN)
    quote = copy.deepcopy(honest.fields["quote"])
    quote["totals"]["cashback_wallet"] += 500
    quote["wallet"][0]["amount"] += 500
    stall.seq, stall.prev = 0, fmt.GENESIS
    greedy = stall.sale(PLAIN, quote=quote)
    (result,) = stall.results(greedy)
    assert result["status"] == "flagged"
    assert result["reason"].startswith("amounts differ from release 1 (totals: cashback_wallet "
                                       f"{quote['totals']['cashback_wallet']} on the receipt, "
                                       f"{honest.fields['quote']['totals']['cashback_wallet']} "
                                       "by the release; also wallet)")
    assert stored(shop.plane) == {greedy.id: ("flagged", result["reason"])}
    assert rows(shop.plane, Journal) == 0
    (event,) = events(shop.plane, "receipt.flagged")
    assert (event["receipt"], event["status"], event["reason"]) == (greedy.id, "flagged",
                                                                   result["reason"])


def test_a_quote_that_pretends_a_code_was_spent_is_flagged(shop: Shop, stall: Stall) -> None:
    """The PoP says which codes it treated as spent; the quote must follow from exactly that."""
    honest = stall.sale(spent=("SUMMER-24",))
    assert [c["status"] for c in honest.fields["quote"]["coupons"]] == ["spent"]
    fields = stall.sale_fields(spent=("SUMMER-24",))
    fields["spent"] = []
    lying = stall.issue(fields)
    results = stall.results(honest, lying)
    assert results[0] == {"id": honest.id, "status": "booked"}
    assert results[1]["status"] == "flagged" and "coupons" in results[1]["reason"]
    assert rows(shop.plane, Redemption) == 0


def test_a_forged_signature_is_rejected_and_nothing_is_stored(shop: Shop, stall: Stall) -> None:
    sale = stall.sale()
    impostor = stall.sign(sale.fields, SigningKey.generate())
    tampered = Signed({**sale.fields, "at": 1}, fmt.encode({**sale.fields, "at": 1}),
                      sale.signature)
    garbage = {"body": sale.body.decode(), "signature": "zz" * 64}
    results = stall.results(impostor, tampered, garbage)
    assert results == [{"id": sale.id, "status": "rejected", "field": "signature",
                        "reason": "not signed by this PoP's enrolled key (forged or altered)"}] * 3
    assert rows(shop.plane, Receipt) == rows(shop.plane, Journal) == 0
    flagged = events(shop.plane, "receipt.flagged")
    assert len(flagged) == 3 and all(e["stored"] is False and e["receipt"] == sale.id
                                     for e in flagged)
    # the genuine one still books afterwards
    assert stall.results(sale) == [{"id": sale.id, "status": "booked"}]


def test_other_content_under_a_known_id_is_rejected_and_the_first_stands(shop: Shop,
                                                                         stall: Stall) -> None:
    first = stall.sale()
    assert stall.results(first)[0]["status"] == "booked"
    stall.seq, stall.prev = 0, fmt.GENESIS
    second = stall.sale(PLAIN)
    assert second.id == first.id
    (result,) = stall.results(second)
    assert (result["status"], result["field"]) == ("rejected", "body")
    assert "altered" in result["reason"]
    with shop.plane.state.db.session() as session:
        row = session.scalar(select(Receipt))
        assert row is not None and row.digest == first.digest
    assert any("altered" in e["reason"] for e in events(shop.plane, "receipt.flagged"))


def test_reordered_receipts_wait_for_the_gap_then_book(shop: Shop, stall: Stall) -> None:
    one, two, three = stall.sale(PLAIN), stall.sale(PLAIN), stall.sale(PLAIN)
    gap = f"waiting for receipt {one.id}, missing from the chain before it"
    assert stall.results(two) == [{"id": two.id, "status": "held", "reason": gap}]
    assert journals_of(shop.plane, two.id) == []
    (event,) = events(shop.plane, "receipt.chain_gap")
    assert (event["receipt"], event["reason"]) == (two.id, gap)
    assert stall.results(three, one) == [{"id": three.id, "status": "booked"},
                                         {"id": one.id, "status": "booked"}]
    assert {k: v[0] for k, v in stored(shop.plane).items()} == {
        one.id: "booked", two.id: "booked", three.id: "booked"}
    assert journals_of(shop.plane, two.id) != []
    assert stall.results(two) == [{"id": two.id, "status": "duplicate", "original": "booked"}]


def test_a_batch_in_any_order_books_in_seq_order(shop: Shop, stall: Stall) -> None:
    receipts = [stall.sale(PLAIN) for _ in range(4)]
    shuffled = [receipts[i] for i in (3, 1, 0, 2)]
    assert stall.results(*shuffled) == [{"id": r.id, "status": "booked"} for r in shuffled]
    assert events(shop.plane, "receipt.chain_gap") == []


def test_a_held_receipt_waits_for_its_whole_gap(shop: Shop, stall: Stall) -> None:
    one, two, three, four = (stall.sale(PLAIN) for _ in range(4))
    gap = f"waiting for receipt {two.id}, missing from the chain before it"
    assert stall.results(four) == [{"id": four.id, "status": "held", "reason": (
        f"waiting for receipt {three.id}, missing from the chain before it")}]
    assert stall.results(three) == [{"id": three.id, "status": "held", "reason": gap}]
    assert stored(shop.plane)[four.id] == ("held", gap)  # now waits for the first missing
    assert [r["status"] for r in stall.results(one)] == ["booked"]
    assert stored(shop.plane)[three.id] == ("held", gap)
    assert stall.results(two) == [{"id": two.id, "status": "booked"}]
    assert {v[0] for v in stored(shop.plane).values()} == {"booked"}


def test_a_fork_is_flagged(shop: Shop, stall: Stall) -> None:
    one = stall.sale(PLAIN)
    other = stall.issue(stall.sale_fields(PLAIN), seq=2, prev="f" * 64)
    assert stall.results(one)[0]["status"] == "booked"
    (result,) = stall.results(other)
    assert result["status"] == "flagged" and result["reason"].startswith("chain fork")
    assert one.digest in result["reason"]
    assert journals_of(shop.plane, other.id) == []
    (event,) = events(shop.plane, "receipt.chain_fork")
    assert event["receipt"] == other.id
    # a PoP's first receipt must start from the genesis prev
    second = shop.enroll("stall-2")
    bad_first = second.issue(second.sale_fields(PLAIN), prev="e" * 64)
    assert second.results(bad_first)[0]["status"] == "flagged"


def test_a_held_receipt_whose_predecessor_does_not_link_is_flagged(shop: Shop,
                                                                   stall: Stall) -> None:
    one = stall.sale(PLAIN)
    forked = stall.issue(stall.sale_fields(PLAIN), seq=2, prev="d" * 64)
    assert stall.results(forked)[0]["status"] == "held"
    assert stall.results(one)[0]["status"] == "booked"
    status, reason = stored(shop.plane)[forked.id]
    assert status == "flagged" and reason is not None and reason.startswith("chain fork")
    assert journals_of(shop.plane, forked.id) == []


def test_another_pops_or_merchants_receipt_is_rejected(shop: Shop, stall: Stall,
                                                       plane: Plane) -> None:
    other = shop.enroll("stall-2")
    theirs = other.sale(PLAIN)
    assert stall.results(theirs) == [{"id": theirs.id, "status": "rejected", "field": "pop",
                                      "reason": "a receipt of another PoP than the caller"}]
    # signed by the other PoP's key but claiming to be this PoP's
    posing = stall.sign({**theirs.fields, "pop": stall.pop_id,
                         "id": fmt.receipt_id(stall.pop_id, 1)}, other.key)
    assert stall.results(posing)[0]["field"] == "signature"
    foreign = make_shop(plane, "elsewhere").enroll("stall-9")
    (result,) = stall.results(stall.sign({**foreign.sale(PLAIN).fields, "pop": stall.pop_id,
                                          "id": fmt.receipt_id(stall.pop_id, 1)}))
    assert (result["status"], result["field"]) == ("rejected", "merchant")
    assert rows(shop.plane, Receipt) == 0


def test_malformed_receipts_are_rejected_by_field_and_the_rest_still_book(shop: Shop,
                                                                          stall: Stall) -> None:
    good = stall.sale(PLAIN)
    fields = good.fields
    spaced = {"body": good.body.decode().replace(",", ", ", 1), "signature": good.signature}
    without_seq = stall.sign({k: v for k, v in fields.items() if k != "seq"})
    without_release = stall.sign({k: v for k, v in fields.items() if k != "release"})
    bad_release = stall.sign({**fields, "release": {"number": 0, "hash": "x"}})
    bad_customer = stall.sign({**fields, "customer": "Alice"})
    unsorted_spent = stall.sign({**fields, "spent": ["b", "a"]})
    bad_refund = stall.sign({**fields, "kind": "refund", "refund_of": "1-x", "lines": [0],
                             "reversal": {}})
    huge_seq = stall.sign({**fields, "seq": 2**40, "id": fmt.receipt_id(stall.pop_id, 2**40)})
    items: list[Any] = [
        spaced, without_seq, without_release, bad_release, bad_customer, unsorted_spent,
        bad_refund, huge_seq, "text", {"body": good.body.decode()}, {**good.item(), "x": 1},
        {"body": 5, "signature": good.signature}, good]
    results = stall.results(*items)
    assert [(r["status"], r.get("field")) for r in results] == [
        ("rejected", "body"), ("rejected", "seq"), ("rejected", "release"),
        ("rejected", "release.number"), ("rejected", "customer"), ("rejected", "spent"),
        ("rejected", "refund_of"), ("rejected", "seq"), ("rejected", "body"),
        ("rejected", "signature"), ("rejected", "x"), ("rejected", "body"), ("booked", None)]
    assert all(r["reason"] for r in results[:-1])
    assert results[0]["id"] is None and results[2]["id"] == good.id
    assert stored(shop.plane) == {good.id: ("booked", None)}


@pytest.mark.parametrize(("body", "field"), [
    ({"receipts": []}, "receipts"),
    ({"receipts": "x"}, "receipts"),
    ({}, "receipts"),
    ({"receipts": [{}], "more": 1}, "more"),
])
def test_a_body_that_is_no_batch_is_422(stall: Stall, body: dict[str, Any], field: str) -> None:
    response = stall.shop.plane.call("POST", "/v1/receipts", stall.token, json=body)
    assert response.status_code == 422 and error_of(response)["field"] == field


def test_a_batch_over_500_is_422_and_nothing_is_stored(shop: Shop, stall: Stall) -> None:
    sale = stall.sale(PLAIN)
    response = stall.post(*[sale] * 501)
    assert response.status_code == 422
    assert error_of(response)["field"] == "receipts"
    assert rows(shop.plane, Receipt) == 0
    assert len(stall.results(*[sale] * 500)) == 500


def test_only_an_enrolled_pop_may_upload(shop: Shop, stall: Stall) -> None:
    item = stall.sale(PLAIN).item()
    for token in (None, shop.account.token, "prp_" + "A" * 43):
        response = shop.plane.call("POST", "/v1/receipts", token, json={"receipts": [item]})
        assert response.status_code == 401, token
    assert rows(shop.plane, Receipt) == 0


def test_an_unknown_release_or_snapshot_is_flagged(shop: Shop, stall: Stall) -> None:
    wrong_hash = stall.sale(PLAIN, release={"number": 1, "hash": "sha256:" + "0" * 64})
    wrong_number = stall.sale(PLAIN, release={"number": 7, "hash": shop.release.hash})
    no_snapshot = stall.sale(PLAIN, snapshot=42)
    results = stall.results(wrong_hash, wrong_number, no_snapshot)
    assert [r["status"] for r in results] == ["flagged"] * 3
    assert "not one of this merchant's" in results[0]["reason"]
    assert "release 7" in results[1]["reason"]
    assert results[2]["reason"] == "redemption snapshot 42 was never published"


def test_a_code_used_twice_offline_is_booked_once_and_held_once(shop: Shop,
                                                                stall: Stall) -> None:
    """summer is per_customer: 1. Two PoPs, both offline, each let Alice use it."""
    other = shop.enroll("stall-2")
    here, there = stall.sale(), other.sale()
    assert stall.results(here) == [{"id": here.id, "status": "booked"}]
    reason = "coupon summer already redeemed (offline double use)"
    assert other.results(there) == [{"id": there.id, "status": "held", "reason": reason}]
    assert journals_of(shop.plane, there.id) == []
    assert rows(shop.plane, Redemption) == 1
    (event,) = events(shop.plane, "receipt.held")
    assert (event["receipt"], event["reason"]) == (there.id, reason)
    # Bob may still use it, and a PoP that knew it was spent books Alice's sale without it
    assert other.results(other.sale(customer=BOB))[0]["status"] == "booked"
    knew = other.sale(spent=("SUMMER-24",))
    assert other.results(knew) == [{"id": knew.id, "status": "booked"}]
    assert rows(shop.plane, Redemption) == 2


def test_a_throttle_holds_the_receipt_with_its_reason(shop: Shop, stall: Stall) -> None:
    with shop.plane.state.db.session() as session:
        session.add(Throttle(merchant_id=shop.account.merchant_id, scope="customer",
                             window_seconds=86_400, max_claims=None, max_amount=100))
        session.commit()
    sale = stall.sale()
    (result,) = stall.results(sale)
    assert result["status"] == "held" and result["reason"]
    assert journals_of(shop.plane, sale.id) == []
    assert rows(shop.plane, Redemption) == 0  # a held receipt redeems nothing
    assert [e["receipt"] for e in events(shop.plane, "receipt.held")] == [sale.id]


def test_a_refund_reverses_its_lines_once(shop: Shop, stall: Stall) -> None:
    sale = stall.sale(PLAIN)
    assert len(sale.fields["quote"]["wallet"]) == 2  # two rules' cashback to split by line
    first, again = stall.refund(sale, [0]), stall.refund(sale, [0, 1])
    assert [r["status"] for r in stall.results(sale, first)] == ["booked", "booked"]
    assert set(journals_of(shop.plane, first.id)) == {"reversal"}
    (result,) = stall.results(again)
    assert result == {"id": again.id, "status": "flagged",
                      "reason": f"line(s) 0 of receipt {sale.id} were refunded already"}
    assert journals_of(shop.plane, again.id) == []
    rest = stall.refund(sale, [1, 2])
    assert stall.results(rest) == [{"id": rest.id, "status": "booked"}]
    with shop.plane.state.db.session() as session:
        def balance(what: str) -> int | None:
            return session.scalar(select(func.sum(Posting.amount)).where(
                Posting.account == f"customer:{ALICE}:{what}"))

        assert (balance("wallet"), balance("points")) == (0, 0)  # all given, reversed once
        assert balance("credit") == 300  # credits are per order: a line refund keeps them


def test_a_refund_that_does_not_match_its_sale_is_flagged(shop: Shop, stall: Stall) -> None:
    sale = stall.sale(PLAIN)
    assert stall.results(sale)[0]["status"] == "booked"
    honest = stall.refund_fields(sale, [1])["reversal"]
    more = copy.deepcopy(honest["wallet"])
    more[0]["amount"] += 1
    cases = [
        ({"lines": [7]}, "has 3 lines; line 7 is none"),
        ({"lines": [0]}, "reversal's lines, totals, wallet, points differ from what lines 0"),
        ({"reversal": {**honest, "points": honest["points"] + 1}}, "reversal's points differ"),
        ({"reversal": {**honest, "totals": {**honest["totals"], "net": 1}}},
         "reversal's totals differ"),
        ({"reversal": {**honest, "wallet": more}}, "reversal's wallet differ"),
        ({"reversal": {**honest, "wallet": []}}, "reversal's wallet differ"),
    ]
    for overrides, reason in cases:
        refund = stall.refund(sale, [1], **overrides)
        (result,) = stall.results(refund)
        assert result["status"] == "flagged" and reason in result["reason"], (reason, result)
        assert journals_of(shop.plane, refund.id) == []
    refund_of_refund = stall.refund(sale, [1], refund_of=refund.id)
    assert "only a sale is refunded" in stall.results(refund_of_refund)[0]["reason"]
    assert stall.results(stall.refund(sale, [1]))[0]["status"] == "booked"


def test_a_refund_waits_for_its_sale_to_be_booked(shop: Shop, stall: Stall) -> None:
    """The sale's PoP was offline, its second receipt arrived first; the refund, made at
    another PoP, waits for the sale, then books when the chain is whole."""
    other = shop.enroll("stall-2")
    one, sale = stall.sale(PLAIN), stall.sale(PLAIN)
    refund = other.refund(sale, [0, 1, 2])
    assert stall.results(sale)[0]["status"] == "held"
    assert other.results(refund) == [{
        "id": refund.id, "status": "held",
        "reason": f"waiting for receipt {sale.id}, the sale it refunds, to be booked"}]
    assert stall.results(one)[0]["status"] == "booked"
    assert {k: v[0] for k, v in stored(shop.plane).items()} == {
        one.id: "booked", sale.id: "booked", refund.id: "booked"}
    assert journals_of(shop.plane, refund.id) != []


def test_a_refund_of_a_flagged_sale_is_flagged(shop: Shop, stall: Stall) -> None:
    quote = copy.deepcopy(stall.quote(PLAIN, []))
    quote["totals"]["points"] += 1
    sale = stall.sale(PLAIN, quote=quote)
    refund = stall.refund(sale, [0])
    results = stall.results(sale, refund)
    assert [r["status"] for r in results] == ["flagged", "flagged"]
    assert results[1]["reason"] == f"receipt {sale.id} was flagged, not booked: nothing to refund"


def test_every_receipt_is_stamped_with_when_it_arrived(shop: Shop, stall: Stall) -> None:
    before = datetime.now(UTC)
    stall.results(stall.sale(PLAIN))
    with shop.plane.state.db.session() as session:
        row = session.scalar(select(Receipt))
        assert row is not None and before <= row.received_at <= datetime.now(UTC)


def test_receipts_built_by_the_pops_checkout_book(shop: Shop, stall: Stall) -> None:
    """The PoP core's own builders (edge_worker/core/checkout.py), with a real redemption
    snapshot pulled as a PoP pulls it: the control plane re-runs them to the same quote."""
    merchant, release = shop.account.merchant_id, shop.release
    token = {"sub": ALICE, "customer": REQUEST["customer"]}
    cart = {"lines": REQUEST["lines"], "fulfillment": "pickup", "coupons": ["summer-24"]}

    def sale(redemptions: Redemptions | None, seq: int, prev: str) -> Signed:
        evaluation = checkout.evaluate(release, redemptions, cart, token=token, at=1_783_157_400)
        body = checkout.sale_body(evaluation, merchant_id=merchant, pop_id=stall.pop_id,
                                  seq=seq, prev=prev, release_number=1,
                                  release_hash=release.hash, claim=None)
        return stall.sign(fmt.decode(body))

    first = sale(None, 1, fmt.GENESIS)
    assert stall.results(first) == [{"id": first.id, "status": "booked"}]
    pulled = shop.plane.call("GET", f"/v1/pops/{stall.pop_id}/redemptions", stall.token)
    assert pulled.status_code == 200
    state = Redemptions.from_snapshot(pulled.data, release=release, merchant=merchant)
    second = sale(state, 2, first.digest)
    assert second.fields["snapshot"] == state.version and second.fields["spent"] == [
        stall.code_hash("summer-24")]
    assert [c["status"] for c in second.fields["quote"]["coupons"]] == ["spent"]
    refund = stall.sign(fmt.decode(checkout.refund_body(
        first.fields, [0, 2], merchant_id=merchant, pop_id=stall.pop_id, seq=3,
        prev=second.digest, at=1_783_157_500)))
    assert stall.results(refund, second) == [{"id": refund.id, "status": "booked"},
                                             {"id": second.id, "status": "booked"}]
    assert rows(shop.plane, Redemption) == 1


def test_concurrent_uploads_book_each_receipt_and_each_code_once(shop: Shop,
                                                                 stall: Stall) -> None:
    """The PoP's uploader retries while its first upload still runs, and another PoP uploads
    Alice's second use of the code at the same moment."""
    other = shop.enroll("stall-2")
    mine = [stall.sale()] + [stall.sale(PLAIN) for _ in range(3)]
    theirs = other.sale()

    def upload(index: int) -> list[str]:
        if index == 4:
            return [r["status"] for r in other.results(theirs)]
        return [r["status"] for r in stall.results(*mine)]

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(upload, range(5)))
    assert all(set(answer) <= {"booked", "duplicate", "held"} for answer in answers)
    statuses = stored(shop.plane)
    assert {statuses[r.id][0] for r in mine[1:]} == {"booked"}
    assert sorted([statuses[mine[0].id][0], statuses[theirs.id][0]]) == ["booked", "held"]
    assert rows(shop.plane, Redemption) == 1
    assert rows(shop.plane, Receipt) == 5
