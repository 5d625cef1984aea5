"""The PoP's HTTP API, in process: a real release of the corner market, a real Ed25519 signer,
real customer tokens, and list-backed host adapters (docs/pop_api.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC
from typing import Any

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from edge_worker.core.checkout import QUOTE_CONTEXT, claim_hash
from edge_worker.core.metrics import Counter, Gauge, Histogram, Registry
from edge_worker.core.pop import HttpRequest, HttpResponse, Live, PopApp
from edge_worker.core.redemptions import Redemptions
from edge_worker.core.release import Release
from poprules import api, receipt
from poprules import customer_token as ct
from poprules.literals import parse_time
from tests.conftest import DEMO, ROOT

MERCHANT, POP = 4, 7
NOW = parse_time("2026-07-04T09:30:00Z", UTC)  # a Saturday morning in Lisbon
CUSTOMER_KEY = SigningKey(b"c" * 32)
KEY_ID = "00112233aabbccdd"
POP_KEY = SigningKey(b"p" * 32)
CART = [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 2}, {"sku": "SOCK-3", "qty": 3}]
ORDER: dict[str, Any] = {"lines": CART, "channel": "pos", "fulfillment": "pickup",
                         "coupons": ["summer-24"], "prefer": "wallet"}
POP_NAME = "lisbon-stall"  # what `order.pop` is at this PoP, whatever a client says
GOLD = {"tier": "gold", "orders": 3, "tags": ["vip"], "referred": False}


class ListOutbox:
    """The Outbox protocol over a list; `broken` makes every write fail."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []
        self.broken = False

    def append(self, build: Callable[[int, str], tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
        prev = receipt.digest(self.items[-1][0]) if self.items else receipt.GENESIS
        body, signature = build(len(self.items) + 1, prev)
        if self.broken:
            raise OSError("disk full")
        self.items.append((body, signature))
        return body, signature

    def depth(self) -> int:
        return len(self.items)

    def find(self, receipt_id: str) -> bytes | None:
        return next((b for b, _ in self.items if json.loads(b)["id"] == receipt_id), None)

    def refunded(self, receipt_id: str) -> set[int]:
        done: set[int] = set()
        for body, _ in self.items:
            fields = json.loads(body)
            if fields["kind"] == "refund" and fields["refund_of"] == receipt_id:
                done |= set(fields["lines"])
        return done


class Releases:
    def __init__(self, live: Live | None) -> None:
        self.live = live

    def current(self) -> Live | None:
        return self.live


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def release() -> Release:
    program = api.load(DEMO / "rules.yaml", DEMO / "catalog.json")
    bundle = api.build(program, customer_keys=[(KEY_ID, CUSTOMER_KEY.verify_key.encode().hex())])
    return api.load_release(bundle)


class Pop:
    def __init__(self, live: Live | None, *, claim_page: str | None = None) -> None:
        self.outbox = ListOutbox()
        self.releases = Releases(live)
        self.clock = Clock()
        self.app = PopApp(merchant_id=MERCHANT, pop_id=POP, pop_name=POP_NAME,
                          signer=lambda message: POP_KEY.sign(message).signature,
                          clock=self.clock, releases=self.releases, outbox=self.outbox,
                          claim_page=claim_page)

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpResponse:
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        return self.app.handle(HttpRequest(method, path, "", headers or {}, data))

    def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        response = self.call("POST", path, body, **kwargs)
        return response.status, json.loads(response.body)


@pytest.fixture
def pop(release: Release) -> Pop:
    return Pop(Live(release, 3))


def token_for(subject: str = "alice", *, customer: dict[str, Any] | None = None,
              merchant: int = MERCHANT, issued: int = NOW - 60, ttl: int = 900,
              key: SigningKey = CUSTOMER_KEY) -> str:
    payload = ct.new_payload(merchant_id=merchant, subject=subject, referrer=None,
                             customer=ct.check_customer(customer or GOLD), issued_at=issued,
                             ttl=ttl)
    data = ct.encode_payload(payload)
    return ct.assemble(data, KEY_ID, key.sign(ct.CONTEXT + data).signature)


def simulate(release: Release, order: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What a simulation in clear answers for the same order at the PoP's time."""
    request = {**order, "at": "2026-07-04T09:30:00Z", "pop": POP_NAME, **extra}
    return release.quote(release.read_request(request), with_release=False)


def error_of(status: int, answer: Any, expected: int, field: str | None) -> str:
    assert status == expected, answer
    assert set(answer) == {"error"} and set(answer["error"]) == {"field", "message"}
    assert answer["error"]["field"] == field, answer
    message: str = answer["error"]["message"]
    return message


def verifies(message: bytes, signature_hex: str) -> bool:
    try:
        VerifyKey(POP_KEY.verify_key.encode()).verify(message, bytes.fromhex(signature_hex))
    except BadSignatureError:
        return False
    return True


# --- POST /v1/quote ------------------------------------------------------------------------


def test_a_quote_is_the_releases_answer_at_the_pops_time_signed(pop: Pop,
                                                                release: Release) -> None:
    status, answer = pop.post("/v1/quote", ORDER)
    assert status == 200
    expected = simulate(release, ORDER)
    assert {k: answer[k] for k in expected} == expected
    assert answer["totals"]["payable"] == 5870
    assert answer["release"] == {"program": "corner-market", "hash": release.hash, "number": 3}
    assert answer["pop"] == POP and answer["at"] == "2026-07-04T09:30:00Z"
    signature = answer.pop("signature")
    assert verifies(QUOTE_CONTEXT + receipt.encode(answer), signature)
    answer["totals"]["payable"] = 1
    assert not verifies(QUOTE_CONTEXT + receipt.encode(answer), signature)


def test_the_quote_body_is_the_signed_bytes_with_the_signature_last(pop: Pop) -> None:
    """One encoding serves the signature and the answer: the body is the canonical answer,
    with `signature` added as its last key, so a client may check it without re-encoding."""
    body = pop.call("POST", "/v1/quote", ORDER).body
    answer = json.loads(body)
    signature = answer.pop("signature")
    canonical = receipt.encode(answer)
    assert body == canonical[:-1] + b',"signature":"' + signature.encode() + b'"}'
    assert verifies(QUOTE_CONTEXT + canonical, signature)


def test_the_quote_id_names_the_cart_the_time_and_the_shopper(pop: Pop) -> None:
    first = pop.post("/v1/quote", ORDER)[1]["quote_id"]
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert pop.post("/v1/quote", {**ORDER, "ignored": 1})[1]["quote_id"] == first
    assert pop.post("/v1/quote", {**ORDER, "lines": CART[:2]})[1]["quote_id"] != first
    assert pop.post("/v1/quote", ORDER, headers={"x-poprules-customer": token_for()}
                    )[1]["quote_id"] != first
    pop.clock.now += 1
    assert pop.post("/v1/quote", ORDER)[1]["quote_id"] != first


@pytest.mark.parametrize("where", ["header", "body"])
def test_the_customer_comes_from_the_token(pop: Pop, release: Release, where: str) -> None:
    token = token_for(customer={"tier": "gold", "orders": 3, "tags": ["vip"]})
    if where == "header":
        status, answer = pop.post("/v1/quote", ORDER, headers={"x-poprules-customer": token})
    else:
        status, answer = pop.post("/v1/quote", {**ORDER, "customer_token": token})
    assert status == 200
    assert answer["rules"] == simulate(release, ORDER, customer=GOLD)["rules"]


def test_a_customer_spent_in_the_snapshot_is_spent_for_that_shopper_only(
        release: Release) -> None:
    alice = ct.id_hash("alice")
    document = {"format": "poprules-redemptions/1", "merchant": MERCHANT, "version": 9,
                "program": "corner-market", "issued": {}, "spent": [], "spent_sets": [],
                "spent_by_customer": {alice: ["summer"]}}
    snapshot = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    pop = Pop(Live(release, 3, Redemptions.from_snapshot(snapshot, release=release)))
    status, mine = pop.post("/v1/quote", ORDER, headers={"x-poprules-customer": token_for()})
    assert status == 200 and mine["coupons"] == [{"code": "summer-24", "status": "spent"}]
    other = pop.post("/v1/quote", ORDER, headers={"x-poprules-customer": token_for("bob")})[1]
    assert other["coupons"] == [{"code": "summer-24", "status": "valid"}]
    status, sale = pop.post("/v1/checkout", ORDER, headers={"x-poprules-customer": token_for()})
    body = sale["receipt"]["body"]
    assert body["snapshot"] == 9 and body["customer"] == alice and len(body["spent"]) == 1
    assert pop.call("GET", "/v1/release").body == json.dumps(
        {"pop": POP, "merchant": MERCHANT, "release": {"number": 3, "hash": release.hash,
                                                     "program": "corner-market"},
         "snapshot": 9}, separators=(",", ":")).encode()


@pytest.mark.parametrize(("body", "field"), [
    ({**ORDER, "customer": GOLD}, "customer"),
    ({**ORDER, "customer": None}, "customer"),
    ({**ORDER, "at": "2026-07-04T09:30:00Z"}, "at"),
    ({**ORDER, "spent_coupons": ["SUMMER-24"]}, "spent_coupons"),
    ({**ORDER, "pop": "another-stall"}, "pop"),
    ({**ORDER, "lines": [{"sku": "NOPE", "qty": 1}]}, "lines[0].sku"),
    ({**ORDER, "lines": [{"sku": "TEE-01", "qty": 0}]}, "lines[0].qty"),
    ({**ORDER, "prefer": "cash"}, "prefer"),
    ({**ORDER, "customer_token": 12}, "customer_token"),
    ([ORDER], "request"),
])
@pytest.mark.parametrize("path", ["/v1/quote", "/v1/checkout"])
def test_bad_requests_name_the_field_and_write_nothing(pop: Pop, body: Any, field: str,
                                                       path: str) -> None:
    error_of(*pop.post(path, body), 422, field)
    assert pop.outbox.items == []


@pytest.mark.parametrize(("raw", "field"), [
    (b"", "request"), (b"{", "request"), (b'{"lines": [], "lines": []}', "request.lines"),
    (b"\xff", "request"), (b'{"lines": [{"sku": "TEE-01", "qty": 2.0}]}', "lines[0].qty"),
])
@pytest.mark.parametrize("path", ["/v1/quote", "/v1/checkout"])
def test_bodies_that_are_not_requests_are_refused(pop: Pop, raw: bytes, field: str,
                                                  path: str) -> None:
    error_of(*pop.post(path, raw=raw), 422, field)
    assert pop.outbox.items == []


@pytest.mark.parametrize(("token", "reason"), [
    (lambda: token_for(ttl=60), "expired"),
    (lambda: token_for(merchant=MERCHANT + 1), "wrong_merchant"),
    (lambda: token_for(key=SigningKey(b"x" * 32)), "bad_signature"),
    (lambda: "not-a-token", "malformed"),
    (lambda: "", "malformed"),
])
def test_a_token_the_pop_cannot_honour_is_refused_with_its_reason(
        pop: Pop, token: Callable[[], str], reason: str) -> None:
    for headers, body in (({"x-poprules-customer": token()}, ORDER),
                          ({}, {**ORDER, "customer_token": token()})):
        message = error_of(*pop.post("/v1/checkout", body, headers=headers), 422,
                           "customer_token")
        assert message.startswith(reason)
    assert pop.outbox.items == []


def test_a_token_given_twice_is_refused(pop: Pop) -> None:
    error_of(*pop.post("/v1/quote", {**ORDER, "customer_token": token_for()},
                       headers={"x-poprules-customer": token_for()}), 422, "customer_token")


def test_without_a_release_the_pop_says_so(release: Release) -> None:
    pop = Pop(None)
    for path in ("/v1/quote", "/v1/checkout", "/v1/coupons/validate"):
        assert "no release" in error_of(*pop.post(path, ORDER), 503, None)
    status, _ = pop.post("/v1/refunds", {"receipt": "7-1", "lines": [0]})
    assert status == 404
    assert json.loads(pop.call("GET", "/v1/release").body) == {
        "pop": POP, "merchant": MERCHANT, "release": None, "snapshot": None}
    assert pop.call("GET", "/healthz").status == 503
    pop.releases.live = Live(release, 5)
    health = pop.call("GET", "/healthz")
    assert (health.status, json.loads(health.body)) == (200, {"status": "ok", "release": 5})
    assert pop.post("/v1/quote", ORDER)[0] == 200


# --- POST /v1/coupons/validate -------------------------------------------------------------


def test_validate_a_code_on_a_cart(pop: Pop) -> None:
    status, answer = pop.post("/v1/coupons/validate", {"code": " Summer-24", "lines": CART})
    assert status == 200
    assert answer == {"code": " Summer-24", "status": "valid", "rule": "summer-apparel",
                      "gives": 398, "report": {"rule": "summer-apparel", "status": "applied",
                                               "amount": 398}}


def test_validate_a_code_without_a_cart(pop: Pop) -> None:
    status, answer = pop.post("/v1/coupons/validate", {"code": "SUMMER-24"})
    assert status == 200
    assert answer == {"code": "SUMMER-24", "status": "not_applicable", "rule": "summer-apparel",
                      "reason": "no_items",
                      "report": {"rule": "summer-apparel", "status": "no_items"}}
    assert pop.post("/v1/coupons/validate", {"code": "WINTER"})[1] == {
        "code": "WINTER", "status": "unknown"}
    pop.clock.now = parse_time("2026-10-01T00:00:00Z", UTC)
    assert pop.post("/v1/coupons/validate", {"code": "SUMMER-24"})[1]["status"] == "expired"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "code"), ({"code": 24}, "code"), ({"code": 2.5}, "code"),
    ({"code": "SUMMER-24", "coupons": ["X"]}, "coupons"),
    ({"code": "SUMMER-24", "customer": GOLD}, "customer"),
    ({"code": "SUMMER-24", "lines": [{"sku": "NOPE", "qty": 1}]}, "lines[0].sku"),
    ({"code": "SUMMER-24", "customer_token": "x.y.z"}, "customer_token"),
    ("SUMMER-24", "body"),
])
def test_validate_refuses_bad_input(pop: Pop, body: Any, field: str) -> None:
    error_of(*pop.post("/v1/coupons/validate", body), 422, field)


# --- POST /v1/checkout ---------------------------------------------------------------------


def test_checkout_stores_a_signed_chained_receipt_before_answering(pop: Pop,
                                                                   release: Release) -> None:
    answers = [pop.post("/v1/checkout", ORDER) for _ in range(3)]
    assert [status for status, _ in answers] == [201, 201, 201]
    prev = receipt.GENESIS
    for seq, ((body, signature), (_, answer)) in enumerate(
            zip(pop.outbox.items, answers, strict=True), start=1):
        fields = receipt.decode(body)
        assert (fields["seq"], fields["id"], fields["prev"]) == (seq, f"{POP}-{seq}", prev)
        VerifyKey(POP_KEY.verify_key.encode()).verify(receipt.statement(body), signature)
        assert answer["receipt"] == {"id": f"{POP}-{seq}", "seq": seq, "body": fields,
                                     "signature": signature.hex()}
        prev = receipt.digest(body)
    fields = answers[0][1]["receipt"]["body"]
    assert fields["kind"] == "sale" and fields["merchant"] == MERCHANT and fields["pop"] == POP
    assert fields["at"] == NOW and fields["release"] == {"number": 3, "hash": release.hash}
    assert fields["request"] == {**ORDER, "at": "2026-07-04T09:30:00Z", "pop": POP_NAME}
    assert fields["quote"] == simulate(release, ORDER)
    assert fields["quote_id"] == answers[0][1]["quote"]["quote_id"]
    assert (fields["customer"], fields["claim"], fields["snapshot"], fields["spent"]) == (
        None, None, None, [])


def test_checkout_re_evaluates_and_ignores_amounts_from_the_client(pop: Pop,
                                                                   release: Release) -> None:
    forged = {**ORDER, "lines": [{**line, "unit_price": 1, "net": 1} for line in CART],
              "totals": {"payable": 1}, "quote": {"totals": {"payable": 1}},
              "wallet": [{"rule": "pickup-boost", "amount": 99999}]}
    status, answer = pop.post("/v1/checkout", forged)
    assert status == 201
    fields = answer["receipt"]["body"]
    assert fields["quote"] == simulate(release, ORDER)
    assert fields["quote"]["totals"]["payable"] == 5870
    assert fields["request"] == {**ORDER, "at": "2026-07-04T09:30:00Z", "pop": POP_NAME}  # nothing forged kept


def test_checkout_with_a_customer_token_records_the_shopper(pop: Pop, release: Release) -> None:
    status, answer = pop.post("/v1/checkout", ORDER, headers={"x-poprules-customer": token_for()})
    assert status == 201
    fields = answer["receipt"]["body"]
    assert fields["customer"] == ct.id_hash("alice")
    assert fields["request"]["customer"] == GOLD
    assert fields["quote"] == simulate(release, ORDER, customer=GOLD)
    assert "claim_token" not in answer


def test_an_anonymous_checkout_can_ask_for_a_claim_token(pop: Pop) -> None:
    status, answer = pop.post("/v1/checkout", {**ORDER, "claim": True})
    assert status == 201
    token = answer["claim_token"]
    assert re.fullmatch(rf"{POP}-1\.[A-Za-z0-9_-]{{22}}", token)
    assert answer["receipt"]["body"]["claim"] == claim_hash(token)
    assert token not in pop.outbox.items[0][0].decode()
    again = pop.post("/v1/checkout", {**ORDER, "claim": True})[1]["claim_token"]
    assert again.split(".")[1] != token.split(".")[1]
    assert "claim_token" not in pop.post("/v1/checkout", {**ORDER, "claim": False})[1]


def test_a_claim_token_is_drawn_as_a_qr_code_of_the_claim_page(release: Release) -> None:
    pop = Pop(Live(release, 3), claim_page="https://cp.example.com/claim")
    token = pop.post("/v1/checkout", {**ORDER, "claim": True})[1]["claim_token"]
    status, answer = pop.post("/v1/claims/qr", {"claim_token": token})
    assert status == 200
    assert answer["url"] == f"https://cp.example.com/claim#{token}"
    svg = answer["svg"]
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')  # an image on its own
    assert svg.rstrip().endswith("</svg>")
    assert token not in svg  # drawn, not written: the SVG holds paths only
    assert len(pop.outbox.items) == 1  # drawing it stores nothing


@pytest.mark.parametrize(("body", "field"), [
    ({}, "claim_token"), ({"claim_token": 7}, "claim_token"),
    ({"claim_token": "7-1.short"}, "claim_token"), ({"claim_token": "x", "more": 1}, "more")])
def test_a_qr_code_is_only_drawn_for_a_claim_token(pop: Pop, body: Any, field: str) -> None:
    error_of(*pop.post("/v1/claims/qr", body), 422, field)


def test_the_storefront_lists_the_catalog_and_rules_of_the_release(pop: Pop) -> None:
    response = pop.call("GET", "/v1/storefront")
    assert response.status == 200
    front = json.loads(response.body)
    assert (front["program"], front["currency"]) == ("corner-market", "EUR")
    assert front["release"] == {"number": 3, "hash": pop.releases.live.release.hash}
    assert front["items"][0] == {"sku": "TEE-01", "title": "Organic tee", "price": 1990}
    lanes = {rule["id"]: (rule["kind"], rule["lane"]) for rule in front["rules"]}
    assert lanes["big-basket"] == ("cashback", "choice")
    assert lanes["pickup-boost"] == ("cashback", "wallet")
    assert lanes["summer-apparel"] == ("discount", None)
    assert pop.call("GET", "/v1/storefront").body == response.body


@pytest.mark.parametrize(("path", "kind", "starts"), [
    ("/sdk/poprules.js", "text/javascript", b"// poprules checkout component"),
    ("/demo", "text/html", b"<!doctype html>")])
def test_the_checkout_script_and_demo_shop_are_served_to_any_origin(
        pop: Pop, path: str, kind: str, starts: bytes) -> None:
    response = pop.call("GET", path)
    headers = dict(response.headers)
    assert response.status == 200 and response.body.startswith(starts)
    assert headers["Content-Type"].startswith(kind)
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age" in headers["Cache-Control"]
    assert pop.call("POST", path).status == 405


@pytest.mark.parametrize(("body", "headers"), [
    ({**ORDER, "claim": "yes"}, {}),
    ({**ORDER, "claim": True}, {"x-poprules-customer": token_for()}),
])
def test_a_claim_is_for_anonymous_shoppers_and_a_boolean(pop: Pop, body: Any,
                                                         headers: dict[str, str]) -> None:
    error_of(*pop.post("/v1/checkout", body, headers=headers), 422, "claim")
    assert pop.outbox.items == []


def test_a_failed_outbox_write_sells_nothing(pop: Pop) -> None:
    pop.outbox.broken = True
    message = error_of(*pop.post("/v1/checkout", ORDER), 503, None)
    assert "nothing was committed" in message and "disk" not in message
    assert pop.outbox.items == []
    pop.outbox.broken = False
    assert pop.post("/v1/checkout", ORDER)[1]["receipt"]["seq"] == 1


# --- POST /v1/refunds ----------------------------------------------------------------------


def test_a_refund_reverses_exactly_the_refunded_lines(pop: Pop) -> None:
    sale = pop.post("/v1/checkout", ORDER)[1]["receipt"]["body"]
    pop.clock.now += 3600
    status, answer = pop.post("/v1/refunds", {"receipt": sale["id"], "lines": [2, 0]})
    assert status == 201
    body, signature = pop.outbox.items[1]
    fields = receipt.decode(body)
    VerifyKey(POP_KEY.verify_key.encode()).verify(receipt.statement(body), signature)
    assert answer["receipt"] == {"id": f"{POP}-2", "seq": 2, "body": fields,
                                 "signature": signature.hex()}
    assert fields["prev"] == receipt.digest(pop.outbox.items[0][0])
    assert (fields["kind"], fields["refund_of"], fields["lines"], fields["at"]) == (
        "refund", sale["id"], [0, 2], NOW + 3600)
    lines = [sale["quote"]["lines"][0], sale["quote"]["lines"][2]]
    reversal = fields["reversal"]
    assert reversal["lines"] == lines
    assert reversal["totals"] == {
        "subtotal": 3980 + 1497, "discount": 398 + 499, "net": 3582 + 998,
        "cashback_instant": 0, "payable": 3582 + 998, "cashback_wallet": 316 + 88,
        "points": 35 + 10}
    assert reversal["points"] == 45
    assert sum(w["amount"] for w in reversal["wallet"]) == 316 + 88
    assert [w["rule"] for w in reversal["wallet"]] == ["pickup-boost", "big-basket"]

    rest = pop.post("/v1/refunds", {"receipt": sale["id"], "lines": [1]})[1]["receipt"]["body"]
    booked = {w["rule"]: w["amount"] for w in sale["quote"]["wallet"]}
    for entry in rest["reversal"]["wallet"]:
        booked[entry["rule"]] -= entry["amount"]
    for entry in reversal["wallet"]:
        booked[entry["rule"]] -= entry["amount"]
    assert booked == {"pickup-boost": 0, "big-basket": 0}  # every cent back, no more


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"receipt": f"{POP}-1", "lines": [3]}, 422, "lines[0]"),
    ({"receipt": f"{POP}-1", "lines": [-1]}, 422, "lines[0]"),
    ({"receipt": f"{POP}-1", "lines": [1, 1]}, 422, "lines[1]"),
    ({"receipt": f"{POP}-1", "lines": [1, True]}, 422, "lines[1]"),
    ({"receipt": f"{POP}-1", "lines": [1.0]}, 422, "lines[0]"),
    ({"receipt": f"{POP}-1", "lines": [1, 0]}, 422, "lines[1]"),  # 0 refunded already
    ({"receipt": f"{POP}-1", "lines": []}, 422, "lines"),
    ({"receipt": f"{POP}-1"}, 422, "lines"),
    ({"receipt": f"{POP}-1", "lines": [1], "amount": 5}, 422, "amount"),
    ({"receipt": 1, "lines": [1]}, 422, "receipt"),
    ({"lines": [1]}, 422, "receipt"),
    ({"receipt": f"{POP}-9", "lines": [1]}, 404, "receipt"),
    ({"receipt": f"{POP}-2", "lines": [0]}, 422, "receipt"),  # a refund is not refundable
    ([1], 422, "body"),
])
def test_bad_refunds_name_the_field_and_write_nothing(pop: Pop, body: Any, status: int,
                                                      field: str) -> None:
    sale = pop.post("/v1/checkout", ORDER)[1]["receipt"]
    assert pop.post("/v1/refunds", {"receipt": sale["id"], "lines": [0]})[0] == 201
    before = list(pop.outbox.items)
    error_of(*pop.post("/v1/refunds", body), status, field)
    assert pop.outbox.items == before


# --- HTTP: routing, CORS, limits, errors ---------------------------------------------------


def test_every_answer_allows_any_origin_and_preflight_is_answered(pop: Pop) -> None:
    preflight = pop.call("OPTIONS", "/v1/checkout")
    assert preflight.status == 204 and preflight.body == b""
    headers = dict(preflight.headers)
    assert headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type, X-Poprules-Customer"
    for response in (preflight, pop.call("POST", "/v1/quote", ORDER),
                     pop.call("POST", "/v1/quote", raw=b"{"), pop.call("GET", "/nowhere"),
                     pop.call("GET", "/metrics"), pop.call("DELETE", "/v1/quote")):
        assert dict(response.headers)["Access-Control-Allow-Origin"] == "*"
        assert "X-Poprules-Customer" in dict(response.headers)["Access-Control-Allow-Headers"]


def test_unknown_paths_wrong_methods_and_large_bodies(pop: Pop) -> None:
    error_of(*pop.post("/v1/quotes", ORDER), 404, "path")
    response = pop.call("GET", "/v1/quote")
    error_of(response.status, json.loads(response.body), 405, "method")
    assert dict(response.headers)["Allow"] == "POST, OPTIONS"
    assert dict(pop.call("POST", "/healthz").headers)["Allow"] == "GET, HEAD, OPTIONS"
    assert pop.call("HEAD", "/healthz").status == 200
    huge = b'{"lines": [], "pad": "' + b"x" * (1 << 20) + b'"}'
    error_of(*pop.post("/v1/checkout", raw=huge), 413, "body")
    assert pop.outbox.items == []


def test_a_failure_inside_the_pop_is_a_500_without_a_stack_trace(release: Release) -> None:
    def broken(message: bytes) -> bytes:
        raise RuntimeError("secret internals")

    pop = Pop(Live(release, 3))
    pop.app._signer = broken
    response = pop.call("POST", "/v1/quote", ORDER)
    assert error_of(response.status, json.loads(response.body), 500, None) == "internal error"
    assert b"secret" not in response.body and b"Traceback" not in response.body


# --- GET /metrics --------------------------------------------------------------------------

SAMPLE = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})?'
                    r" (-?[0-9.e+-]+|\+Inf|-Inf|NaN)")
COMMENT = re.compile(r"# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
                     r"(counter|gauge|histogram|summary|untyped))")


def metrics_of(pop: Pop) -> dict[str, float]:
    response = pop.call("GET", "/metrics")
    assert response.status == 200
    assert dict(response.headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.body.decode()
    assert text.endswith("\n")
    values = {}
    for line in text.splitlines():
        assert COMMENT.fullmatch(line) or SAMPLE.fullmatch(line), line
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_count_requests_quotes_errors_release_and_outbox(pop: Pop) -> None:
    pop.post("/v1/quote", ORDER)
    pop.post("/v1/checkout", ORDER)
    pop.post("/v1/quote", {**ORDER, "at": "now"})
    pop.outbox.broken = True
    pop.post("/v1/checkout", ORDER)
    values = metrics_of(pop)
    assert values['poprules_pop_requests_total{route="/v1/quote",status="200"}'] == 1
    assert values['poprules_pop_requests_total{route="/v1/quote",status="422"}'] == 1
    assert values['poprules_pop_requests_total{route="/v1/checkout",status="503"}'] == 1
    assert values['poprules_pop_request_seconds_count{route="/v1/quote"}'] == 2
    assert values['poprules_pop_request_seconds_bucket{route="/v1/quote",le="+Inf"}'] == 2
    assert values["poprules_pop_quotes_total"] == 3
    assert values["poprules_pop_errors_total"] == 1
    assert values["poprules_pop_release_number"] == 3
    assert values["poprules_pop_outbox_depth"] == 1
    pop.call("GET", "/what")
    assert metrics_of(pop)['poprules_pop_requests_total{route="unmatched",status="404"}'] == 1


def test_the_registry_escapes_labels_and_refuses_misuse() -> None:
    registry = Registry()
    counter = Counter(registry, "c_total", "a\nhelp \\", ("path",))
    counter.inc('a"b\\c\nd')
    histogram = Histogram(registry, "h_seconds", "h", buckets=(0.1, 1.0))
    histogram.observe(0.5)
    histogram.observe(0.1)
    Gauge(registry, "g", "g", lambda: 2.5)
    text = registry.render()
    assert '# HELP c_total a\\nhelp \\\\\n' in text
    assert 'c_total{path="a\\"b\\\\c\\nd"} 1\n' in text
    assert 'h_seconds_bucket{le="0.1"} 1\nh_seconds_bucket{le="1"} 2\n' in text
    assert 'h_seconds_bucket{le="+Inf"} 2\nh_seconds_sum 0.6\nh_seconds_count 2\n' in text
    assert "g 2.5\n" in text
    for line in text.splitlines():
        assert COMMENT.fullmatch(line) or SAMPLE.fullmatch(line), line
    with pytest.raises(ValueError):
        counter.inc()
    with pytest.raises(ValueError):
        counter.inc("x", amount=-1)
    with pytest.raises(ValueError):
        Counter(registry, "c_total", "again")


# --- portability ---------------------------------------------------------------------------


def test_the_pop_core_imports_without_flask_wasmtime_nacl_or_a_database() -> None:
    blocked = ["flask", "werkzeug", "wasmtime", "nacl", "sqlalchemy", "prometheus_client",
               "yaml", "click", "gunicorn", "control_plane", "wasm_build.lang",
               "wasm_build.reference", "wasm_build.plan", "wasm_build.emit"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import edge_worker.core.pop, edge_worker.core.checkout, edge_worker.core.metrics\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
