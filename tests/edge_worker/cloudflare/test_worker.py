"""The Worker's logic on CPython, with fakes for the JavaScript side (edge_worker/cloudflare/
worker.py): the release it refuses, the signature check it runs at import, the customer tokens
it checks through a host's Ed25519, the redemption snapshot it fetches, checks and holds, the
receipt chain over Durable Object storage, routing, the queue consumer's rules and the
checkout script."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from control_plane.coupons import RedemptionState, snapshot_body
from control_plane.signing import SNAPSHOT_CONTEXT
from edge_worker.cloudflare import ed25519, worker
from edge_worker.cloudflare.build import embedded_assets
from edge_worker.core import web
from edge_worker.core.engine import EngineError, Runner
from edge_worker.core.pop import HttpRequest, Live, PopApp
from edge_worker.core.redemptions import Redemptions
from edge_worker.engines.wasmtime_engine import WasmtimeEngine
from poprules import api, customer_token, receipt
from poprules.bundle import code_hash, decode, release_statement
from tests.conftest import DEMO
from tests.edge_worker.cloudflare.conftest import MemoryStore
from tests.edge_worker.test_redemptions import KEY as COUPON_KEY
from tests.edge_worker.test_redemptions import MERCHANT as COUPON_MERCHANT
from tests.edge_worker.test_redemptions import STATE, program_of, request_of

CART = {"lines": [{"sku": "TEE-01", "qty": 2}, {"sku": "SOCK-3", "qty": 3}],
        "coupons": ["summer-24"], "fulfillment": "pickup"}
NOW = 1_783_157_400


@pytest.fixture(scope="module")
def bundle() -> bytes:
    return api.build(api.load(DEMO / "rules.yaml", DEMO / "catalog.json"))


@pytest.fixture(scope="module")
def control_key() -> SigningKey:
    return SigningKey(hashlib.sha256(b"control plane").digest())


def signed(bundle: bytes, key: SigningKey, *, number: int = 3,
           merchant: int = 4) -> worker.Built:
    release_hash = decode(bundle).release_hash
    signature = key.sign(release_statement(merchant, number, release_hash)).signature
    return worker.Built(merchant, 7, "edge", number, release_hash, "k1", signature.hex(),
                        {"k1": bytes(key.verify_key).hex()}, bundle)


def wasmtime_runner(built: worker.Built) -> Runner:
    return WasmtimeEngine(use_cache=False).load(decode(built.bundle).module)


class Fixed:
    """A `ReleaseSource` that always answers the same `Live`: the reference hosts."""

    def __init__(self, live: Live) -> None:
        self.live = live

    def current(self) -> Live:
        return self.live


# --- Ed25519 at import ------------------------------------------------------------------------


def test_ed25519_agrees_with_libsodium_on_good_and_bad_signatures() -> None:
    # RFC 8032, section 7.1, test 1.
    assert ed25519.verify(
        bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"), b"",
        bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb882"
                      "1590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"))
    for index in range(24):
        key = SigningKey(hashlib.sha256(b"key %d" % index).digest())
        public = bytes(key.verify_key)
        message = os.urandom(index * 7)
        signature = key.sign(message).signature
        tampered = [(public, message + b"!", signature),
                    (public, message, signature[:index] + bytes([signature[index] ^ 1])
                     + signature[index + 1:]),
                    (bytes(SigningKey(os.urandom(32)).verify_key), message, signature)]
        assert ed25519.verify(public, message, signature)
        for case in tampered:
            assert not ed25519.verify(*case)
            with pytest.raises(BadSignatureError):
                VerifyKey(case[0]).verify(case[1], case[2])


def test_ed25519_refuses_what_libsodium_refuses() -> None:
    key = SigningKey(bytes(32))
    signature = key.sign(b"m").signature
    order = 2**252 + 27742317777372353535851937790883648493
    too_big = signature[:32] + (int.from_bytes(signature[32:], "little") + order).to_bytes(
        32, "little")
    identity = (1).to_bytes(32, "little")  # a public key of small order: anything "verifies"
    assert not ed25519.verify(bytes(key.verify_key), b"m", too_big)
    assert not ed25519.verify(identity, b"m", identity + bytes(32))
    assert not ed25519.verify(bytes(key.verify_key), b"m", signature[:63])
    assert not ed25519.verify(b"\xff" * 32, b"m", signature)  # not a point


# --- the release ------------------------------------------------------------------------------


def test_the_release_loads_and_its_module_is_attached_on_first_use(
        bundle: bytes, control_key: SigningKey) -> None:
    built = signed(bundle, control_key)
    made: list[int] = []

    def make() -> Runner:
        made.append(1)
        return wasmtime_runner(built)

    live = worker.load_release(built, make)
    assert (live.number, live.release.hash, made) == (3, built.hash, [])
    quote = live.release.quote(live.release.read_request({**CART, "at": "2026-07-04T09:30:00Z"}))
    live.release.quote(live.release.read_request({**CART, "at": "2026-07-04T09:30:00Z"}))
    assert made == [1] and quote["totals"]["payable"] > 0


@pytest.mark.parametrize("change", ["key", "number", "merchant", "signature", "hash", "bundle",
                                    "keyring"])
def test_a_release_that_does_not_check_out_is_refused(bundle: bytes, control_key: SigningKey,
                                                      change: str) -> None:
    built = signed(bundle, control_key)
    other = SigningKey(hashlib.sha256(b"someone else").digest())
    broken = {
        "key": signed(bundle, other),  # signed by a key the PoP did not pin
        "number": replace(built, number=4),  # an old release replayed under a new number
        "merchant": replace(built, merchant_id=5),
        "signature": replace(built, signature="00" * 64),
        "hash": replace(built, hash="sha256:" + "0" * 64),
        "bundle": replace(built, bundle=bundle[:-1] + bytes([bundle[-1] ^ 1])),
        "keyring": replace(built, keyring={"k2": built.keyring["k1"]}),
    }[change]
    if change == "key":
        broken = replace(broken, keyring=built.keyring)
    with pytest.raises(worker.ReleaseRefused):
        worker.load_release(broken, lambda: wasmtime_runner(built))


def test_the_data_module_round_trips(bundle: bytes, control_key: SigningKey,
                                     tmp_path: Path) -> None:
    built = signed(bundle, control_key)
    path = tmp_path / f"{worker.RELEASE_MODULE}.py"
    path.write_text(built.module_source(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(worker.RELEASE_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert worker.Built.of(module) == built


def test_a_module_that_cannot_be_made_answers_503_and_is_tried_again(
        bundle: bytes, control_key: SigningKey) -> None:
    built = signed(bundle, control_key)
    attempts: list[int] = []

    def make() -> Runner:
        attempts.append(1)
        if len(attempts) == 1:
            raise ImportError("Failed to import 'rules.mjs'")
        return wasmtime_runner(built)

    app = edge_app(built, worker.load_release(built, make))
    first = app.handle(HttpRequest("POST", "/v1/quote", body=json.dumps(CART).encode()))
    second = app.handle(HttpRequest("POST", "/v1/quote", body=json.dumps(CART).encode()))
    assert (first.status, second.status, len(attempts)) == (503, 200, 2)
    runner = worker.DeferredRunner(make)
    attempts.clear()
    with pytest.raises(EngineError, match="could not be loaded"):
        runner.run([0])


# --- the PoP -----------------------------------------------------------------------------------


def edge_app(built: worker.Built, live: Live | worker.Snapshots, outbox: Any = None,
             key: SigningKey | None = None) -> PopApp:
    signer_key = key or SigningKey(bytes(range(32)))
    releases = live if isinstance(live, worker.Snapshots) else Fixed(live)
    return worker.pop_app(built, releases, signer=lambda m: signer_key.sign(m).signature,
                          clock=lambda: NOW,
                          verify_token=customer_token.verify_customer_token,
                          outbox=outbox or worker.NoReceipts())


@pytest.mark.parametrize(("path", "method", "where"), [
    ("/sdk/poprules.js", "GET", worker.EDGE), ("/demo", "GET", worker.EDGE),
    ("/v1/checkout", "POST", worker.CHAIN),
    ("/v1/refunds", "post", worker.CHAIN), ("/v1/checkout", "OPTIONS", worker.EDGE),
    ("/v1/quote", "POST", worker.EDGE), ("/healthz", "GET", worker.EDGE),
    ("/v1/checkout/", "POST", worker.EDGE), ("/elsewhere", "GET", worker.EDGE)])
def test_checkouts_and_refunds_go_to_the_chain_and_the_rest_stays_at_the_edge(
        path: str, method: str, where: str) -> None:
    assert worker.route(path, method) == where


def test_requests_are_adapted_as_the_self_hosted_pop_sees_them() -> None:
    request = worker.http_request("post", "https://pop.example.com/v1/%71uote?a=1&b=%20",
                                  [("Content-Type", "application/json"),
                                   ("X-Poprules-Customer", "t")], b"{}")
    assert request == HttpRequest("POST", "/v1/quote", "a=1&b=%20",
                                  {"content-type": "application/json",
                                   "x-poprules-customer": "t"}, b"{}")
    assert worker.path_of("https://pop.example.com") == "/"
    assert [worker.declared_too_large(v) for v in (None, "", "12", str(1 << 20),
                                                   str((1 << 20) + 1), "-1", "x")] == \
        [False, False, False, False, True, False, False]


def test_the_hosts_own_errors_are_the_cores_envelope_with_cors(bundle: bytes,
                                                              control_key: SigningKey) -> None:
    built = signed(bundle, control_key)
    core = edge_app(built, worker.load_release(built, lambda: wasmtime_runner(built)))
    big = core.handle(HttpRequest("POST", "/v1/quote", body=b" " * ((1 << 20) + 1)))
    mine = worker.too_large()
    assert (mine.status, json.loads(mine.body)) == (big.status, json.loads(big.body))
    assert set(big.headers) <= set(mine.headers)


def test_the_worker_serves_the_checkout_script_and_demo_shop_from_the_same_files(
        bundle: bytes, control_key: SigningKey) -> None:
    """The Worker reads no files: its build embeds edge_worker/core/web's, byte for byte."""
    namespace: dict[str, Any] = {}
    exec(compile(embedded_assets(), "_embedded.py", "exec"), namespace)  # noqa: S102
    assert namespace["ASSETS"] == {name: web.asset(name) for name in web.TYPES}
    built = signed(bundle, control_key)
    core = edge_app(built, worker.load_release(built, lambda: wasmtime_runner(built)))
    script = core.handle(HttpRequest("GET", "/sdk/poprules.js"))
    assert script.status == 200 and script.body == web.asset(web.SCRIPT)
    assert dict(script.headers)["Access-Control-Allow-Origin"] == "*"


# --- customer tokens through the host's Ed25519 ------------------------------------------------


def test_the_token_verifier_refuses_and_accepts_exactly_as_the_cores() -> None:
    key = SigningKey(hashlib.sha256(b"customer key").digest())
    keyring = {"00112233aabbccdd": bytes(key.verify_key).hex()}

    def token(merchant: int = 4, exp: int = NOW + 60, key_id: str = "00112233aabbccdd",
              signer: SigningKey = key) -> str:
        payload = customer_token.new_payload(
            merchant_id=merchant, subject="alice", referrer=None,
            customer=customer_token.check_customer({"tier": "gold"}), issued_at=NOW - 60,
            ttl=exp - NOW + 60)
        document = customer_token.encode_payload(payload)
        return customer_token.assemble(document, key_id,
                                       signer.sign(customer_token.CONTEXT + document).signature)

    def nacl_check(public: str, message: bytes, signature: bytes) -> bool:
        try:
            VerifyKey(bytes.fromhex(public)).verify(message, signature)
        except BadSignatureError:
            return False
        return True

    good = token()
    cases = [good, token(merchant=5), token(exp=NOW), token(key_id="ffffffffffffffff"),
             token(signer=SigningKey(bytes(32))), "a.b.c", good + "x", 42]
    ours = worker.token_verifier(nacl_check)
    for case in cases:
        outcomes = []
        for verify in (ours, customer_token.verify_customer_token):
            try:
                outcomes.append(("ok", verify(case, keyring, NOW, 4)))  # type: ignore[arg-type]
            except customer_token.CustomerTokenError as exc:
                outcomes.append((exc.reason, exc.message))
        assert outcomes[0] == outcomes[1], case
    assert ours(good, keyring, NOW, 4)["customer"]["tier"] == "gold"


def test_the_private_key_secret_becomes_the_pkcs8_webcrypto_imports() -> None:
    seed = bytes(range(32))
    der = worker.pkcs8_ed25519(worker.seed_of(" " + seed.hex() + "\n"))
    # RFC 8410: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET
    # STRING seed } }, 48 bytes.
    assert len(der) == 48 and der[:2] == b"\x30\x2e" and der[7:12] == b"\x06\x03\x2b\x65\x70"
    assert der[-34:] == b"\x04\x20" + seed
    for bad in ("", "00" * 31, "zz" * 32):
        with pytest.raises(ValueError):
            worker.seed_of(bad)


# --- the redemption snapshot -------------------------------------------------------------------

CONTROL_PLANE = "https://cp.example/"
SECRET = "prp_secret"
TTL = worker.SNAPSHOT_TTL_MS


@pytest.fixture(scope="module")
def coupons_built(control_key: SigningKey) -> worker.Built:
    """A release with generated and literal coupon sets (tests/edge_worker/test_redemptions)."""
    return signed(api.build(program_of(), key=COUPON_KEY), control_key, merchant=COUPON_MERCHANT)


@pytest.fixture
def snapshots(coupons_built: worker.Built) -> worker.Snapshots:
    live = worker.load_release(coupons_built, lambda: wasmtime_runner(coupons_built))
    return worker.Snapshots(coupons_built, live, nacl_check)


def nacl_check(public: str, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(bytes.fromhex(public)).verify(message, signature)
    except BadSignatureError:
        return False
    return True


def snapshot(version: int, state: RedemptionState = STATE,
             merchant: int = COUPON_MERCHANT) -> bytes:
    return snapshot_body(merchant, version, state)


def served(body: bytes, *, key: SigningKey, key_id: str = "k1",
           status: int = 200) -> worker.Answer:
    """The control plane's answer, as `entry._get` hands it over (header names lower case)."""
    return worker.Answer(status, {
        "etag": f'"sha256:{hashlib.sha256(body).hexdigest()}"',
        "x-poprules-key-id": key_id,
        "x-poprules-signature": key.sign(SNAPSHOT_CONTEXT + body).signature.hex()}, body)


class FakeControlPlane:
    """GET /v1/pops/<id>/redemptions: the answer (or failure) it is set to, and the calls."""

    def __init__(self) -> None:
        self.answer: worker.Answer | Exception = worker.Answer(404, {}, b"")
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def get(self, url: str, headers: Any) -> worker.Answer:
        self.calls.append((url, dict(headers)))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def refresh(snapshots: worker.Snapshots, plane: FakeControlPlane, now_ms: float) -> None:
    asyncio.run(snapshots.refresh(plane.get, CONTROL_PLANE, SECRET, now_ms))


def held(snapshots: worker.Snapshots) -> int | None:
    redemptions = snapshots.current().redemptions
    return None if redemptions is None else redemptions.version


def quote_body(coupons: list[str]) -> bytes:
    fields = request_of(coupons)
    del fields["at"]  # the PoP's clock
    return json.dumps(fields).encode()


def test_the_snapshot_context_is_the_control_planes() -> None:
    assert worker.SNAPSHOT_CONTEXT == SNAPSHOT_CONTEXT


def test_a_fetched_snapshot_gives_the_self_hosted_cores_answers(
        snapshots: worker.Snapshots, coupons_built: worker.Built,
        control_key: SigningKey) -> None:
    plane = FakeControlPlane()
    coupons = ["pop-abc 234", "SUMMER-24", "POP-MNP222", "GONE-2345"]
    before = edge_app(coupons_built, snapshots).handle(
        HttpRequest("POST", "/v1/quote", body=quote_body(coupons)))
    assert [c["status"] for c in json.loads(before.body)["coupons"]] == \
        ["unknown", "valid", "unknown", "unknown"]  # no snapshot: what the Worker said before

    body = snapshot(3)
    plane.answer = served(body, key=control_key)
    refresh(snapshots, plane, 1_000)
    assert plane.calls == [(f"https://cp.example/v1/pops/{coupons_built.pop_id}/redemptions",
                            {"Authorization": f"Bearer {SECRET}"})]
    assert held(snapshots) == 3 and snapshots.problem is None

    # The self-hosted core with the same snapshot read by Redemptions.from_snapshot.
    live = snapshots.current()
    reference = Live(live.release, live.number, Redemptions.from_snapshot(
        body, release=live.release, merchant=COUPON_MERCHANT))
    for path, sent in (("/v1/quote", quote_body(coupons)),
                       ("/v1/coupons/validate", json.dumps({
                           "code": "POP-XYZ789", "lines": request_of([])["lines"]}).encode())):
        ours, theirs = (edge_app(coupons_built, source).handle(
            HttpRequest("POST", path, body=sent)) for source in (snapshots, reference))
        assert ours == theirs and ours.status == 200, path
    answer = json.loads(edge_app(coupons_built, snapshots).handle(
        HttpRequest("POST", "/v1/quote", body=quote_body(coupons))).body)
    assert [c["status"] for c in answer["coupons"]] == ["valid", "spent", "spent", "unknown"]
    direct = live.release.quote(live.release.read_request(
        {**request_of(coupons), "at": answer["at"], "pop": "edge"}),
        redemptions=reference.redemptions)
    assert answer["coupons"] == direct["coupons"] and answer["totals"] == direct["totals"]
    release = edge_app(coupons_built, snapshots).handle(HttpRequest("GET", "/v1/release"))
    assert json.loads(release.body)["snapshot"] == 3


def test_the_snapshot_is_asked_for_once_per_ttl_with_its_etag(
        snapshots: worker.Snapshots, control_key: SigningKey) -> None:
    plane = FakeControlPlane()
    first = served(snapshot(3), key=control_key)
    plane.answer = first
    refresh(snapshots, plane, 0)
    refresh(snapshots, plane, TTL - 1)  # fresh enough: no call
    assert len(plane.calls) == 1
    plane.answer = worker.Answer(304, {"etag": first.headers["etag"]}, b"")
    refresh(snapshots, plane, TTL)
    assert plane.calls[1][1]["If-None-Match"] == first.headers["etag"]
    assert held(snapshots) == 3 and snapshots.problem is None
    plane.answer = served(snapshot(4, RedemptionState("corner-market", {}, [], [], {})),
                          key=control_key)
    refresh(snapshots, plane, 2 * TTL - 1)
    assert (len(plane.calls), held(snapshots)) == (2, 3)
    refresh(snapshots, plane, 2 * TTL)
    assert (len(plane.calls), held(snapshots)) == (3, 4)
    live = snapshots.current()
    assert live.redemptions is not None and not live.redemptions.spent("summer-24")


@pytest.mark.parametrize("case", ["lower", "same version", "rogue key", "unpinned key",
                                  "merchant", "program", "not hex", "no signature", "status",
                                  "not json"])
def test_a_snapshot_that_does_not_check_out_is_refused_and_the_last_good_serves(
        snapshots: worker.Snapshots, control_key: SigningKey, case: str) -> None:
    plane = FakeControlPlane()
    plane.answer = served(snapshot(3), key=control_key)
    refresh(snapshots, plane, 0)
    before = snapshots.current()
    rogue = SigningKey(hashlib.sha256(b"rogue").digest())
    other_state = RedemptionState("corner-market", {}, [], [], {})
    good = served(snapshot(4, other_state), key=control_key)
    plane.answer, match = {
        "lower": (served(snapshot(2), key=control_key), "older than version 3: a replay"),
        "same version": (served(snapshot(3, other_state), key=control_key), "other content"),
        "rogue key": (served(snapshot(4), key=rogue), "does not verify with key k1"),
        "unpinned key": (served(snapshot(4), key=control_key, key_id="k9"), "not in the pinned"),
        "merchant": (served(snapshot(4, merchant=COUPON_MERCHANT + 1), key=control_key),
                     "merchant 8's version 4"),
        "program": (served(snapshot(4, replace(STATE, program="other")), key=control_key),
                    "for program 'other'"),
        "not hex": (replace(good, headers={**good.headers, "x-poprules-signature": "zz"}),
                    "does not verify"),
        "no signature": (replace(good, headers={"etag": good.headers["etag"]}),
                         "lacks its signature headers"),
        "status": (worker.Answer(401, {}, b'{"error": {}}'), "GET redemptions: 401"),
        "not json": (served(b"[1]", key=control_key), "not a redemption snapshot"),
    }[case]
    refresh(snapshots, plane, TTL)
    assert snapshots.current() is before and held(snapshots) == 3
    assert snapshots.problem is not None and match in snapshots.problem
    plane.answer = good  # the next good one is taken, a TTL later
    refresh(snapshots, plane, 2 * TTL)
    assert held(snapshots) == 4 and snapshots.problem is None


@pytest.mark.parametrize("failure", [worker.Unreachable("GET ...: TimeoutError"),
                                     worker.Answer(503, {}, b"down"), RuntimeError("a bug")])
def test_an_unreachable_control_plane_leaves_the_last_good_snapshot_serving(
        snapshots: worker.Snapshots, control_key: SigningKey,
        failure: worker.Answer | Exception) -> None:
    plane = FakeControlPlane()
    plane.answer = failure
    refresh(snapshots, plane, 0)  # nothing held yet: no redemption state, as before
    assert held(snapshots) is None and snapshots.problem is not None
    plane.answer = served(snapshot(3), key=control_key)
    refresh(snapshots, plane, TTL - 1)  # a failure is not retried before the TTL either
    assert (len(plane.calls), held(snapshots)) == (1, None)
    refresh(snapshots, plane, TTL)
    assert held(snapshots) == 3
    plane.answer = failure
    refresh(snapshots, plane, 2 * TTL)
    assert held(snapshots) == 3 and snapshots.problem is not None
    refresh(snapshots, plane, 3 * TTL - 1)
    assert len(plane.calls) == 3


def test_no_snapshot_yet_is_no_redemption_state(snapshots: worker.Snapshots) -> None:
    plane = FakeControlPlane()  # answers 404
    refresh(snapshots, plane, 0)
    assert held(snapshots) is None and snapshots.problem is None


@pytest.mark.parametrize(("path", "method", "needs"), [
    ("/v1/quote", "POST", True), ("/v1/coupons/validate", "POST", True),
    ("/v1/checkout", "POST", True), ("/v1/release", "GET", True), ("/v1/release", "HEAD", True),
    ("/v1/quote", "OPTIONS", False), ("/v1/refunds", "POST", False), ("/healthz", "GET", False),
    ("/metrics", "GET", False)])
def test_only_the_answers_that_depend_on_the_snapshot_wait_for_it(path: str, method: str,
                                                                   needs: bool) -> None:
    assert worker.needs_snapshot(path, method) is needs


def test_a_checkout_receipt_names_the_snapshot_and_spent_codes_as_the_self_hosted_pops(
        snapshots: worker.Snapshots, coupons_built: worker.Built, control_key: SigningKey,
        tmp_path: Path) -> None:
    """The chain's Durable Object holds the snapshot the same way; its receipts carry what
    the control plane's ingestion re-runs the checkout with."""
    from edge_worker.host.outbox import Outbox

    body = snapshot(3)
    plane = FakeControlPlane()
    plane.answer = served(body, key=control_key)
    refresh(snapshots, plane, 0)
    live = snapshots.current()
    reference = Live(live.release, live.number, Redemptions.from_snapshot(
        body, release=live.release, merchant=COUPON_MERCHANT))
    key = SigningKey(hashlib.sha256(b"pop").digest())
    sqlite = Outbox(tmp_path / "outbox.db")
    try:
        apps = [edge_app(coupons_built, snapshots, worker.ChainOutbox(MemoryStore()), key),
                edge_app(coupons_built, reference, sqlite, key)]
        answers = [app.handle(HttpRequest("POST", "/v1/checkout",
                                          body=quote_body(["pop-abc234", "summer-24"])))
                   for app in apps]
    finally:
        sqlite.close()
    assert answers[0] == answers[1] and answers[0].status == 201
    sale = json.loads(answers[0].body)["receipt"]["body"]
    assert (sale["snapshot"], sale["spent"]) == (3, [code_hash(COUPON_KEY, "SUMMER-24")])


# --- the receipt chain -------------------------------------------------------------------------


@pytest.fixture
def chain(bundle: bytes, control_key: SigningKey) -> tuple[PopApp, MemoryStore, SigningKey]:
    built = signed(bundle, control_key)
    store = MemoryStore()
    key = SigningKey(hashlib.sha256(b"pop").digest())
    app = edge_app(built, worker.load_release(built, lambda: wasmtime_runner(built)),
                   worker.ChainOutbox(store), key)
    return app, store, key


def post(app: PopApp, path: str, body: Any) -> tuple[int, Any]:
    answer = app.handle(HttpRequest("POST", path, body=json.dumps(body).encode()))
    return answer.status, json.loads(answer.body)


def test_checkouts_are_chained_signed_and_kept_until_the_queue_takes_them(
        chain: tuple[PopApp, MemoryStore, SigningKey]) -> None:
    app, store, key = chain
    outbox = worker.ChainOutbox(store)
    bodies = []
    for _ in range(3):
        status, answer = post(app, "/v1/checkout", CART)
        assert status == 201
        body = receipt.encode(answer["receipt"]["body"])
        key.verify_key.verify(receipt.statement(body),
                              bytes.fromhex(answer["receipt"]["signature"]))
        bodies.append(body)
    fields = [receipt.decode(b) for b in bodies]
    assert [f["seq"] for f in fields] == [1, 2, 3]
    assert [f["prev"] for f in fields] == [receipt.GENESIS, *map(receipt.digest, bodies[:2])]
    assert store.data[worker.HEAD] == f"3 {receipt.digest(bodies[2])}"
    pending = outbox.undelivered(2)
    assert [json.loads(m["body"])["seq"] for _, m in pending] == [1, 2]
    assert outbox.depth() == 3
    outbox.delivered([k for k, _ in pending])
    assert outbox.depth() == 1
    assert [m["body"].encode() for _, m in outbox.undelivered(10)] == [bodies[2]]
    assert outbox.find(fields[1]["id"]) == bodies[1] and outbox.find("7-99") is None


def test_refunds_use_the_chains_own_record(chain: tuple[PopApp, MemoryStore, SigningKey]) -> None:
    app, store, _ = chain
    status, sale = post(app, "/v1/checkout", CART)
    assert status == 201
    sale_id = sale["receipt"]["id"]
    assert post(app, "/v1/refunds", {"receipt": sale_id, "lines": [0]})[0] == 201
    assert worker.ChainOutbox(store).refunded(sale_id) == {0}
    status, error = post(app, "/v1/refunds", {"receipt": sale_id, "lines": [0]})
    assert (status, error["error"]["field"]) == (422, "lines[0]")
    assert post(app, "/v1/refunds", {"receipt": sale_id, "lines": [1]})[0] == 201
    assert worker.ChainOutbox(store).refunded(sale_id) == {0, 1}
    status, error = post(app, "/v1/refunds", {"receipt": "7-404", "lines": [0]})
    assert (status, error["error"]["field"]) == (404, "receipt")


def test_a_receipt_that_cannot_be_stored_commits_nothing(
        chain: tuple[PopApp, MemoryStore, SigningKey]) -> None:
    app, store, _ = chain
    store.fail_writes = True
    assert post(app, "/v1/checkout", CART)[0] == 503
    assert store.data == {}
    store.fail_writes = False
    status, answer = post(app, "/v1/checkout", CART)
    assert (status, answer["receipt"]["seq"]) == (201, 1)


def test_the_chain_refuses_a_forked_moved_or_oversized_receipt() -> None:
    store = MemoryStore()
    outbox = worker.ChainOutbox(store)

    def body(seq: int, prev: str, padding: str = "") -> bytes:
        return receipt.encode({"format": receipt.FORMAT, "kind": "sale",
                               "id": receipt.receipt_id(7, seq), "merchant": 4, "pop": 7,
                               "seq": seq, "prev": prev, "at": NOW, "note": padding})

    outbox.append(lambda seq, prev: (body(seq, prev), b"s" * 64))
    with pytest.raises(worker.ChainError, match="chain's next is 2"):
        outbox.append(lambda seq, prev: (body(seq + 1, prev), b"s" * 64))

    def moving(seq: int, prev: str) -> tuple[bytes, bytes]:
        store.data[worker.HEAD] = f"9 {receipt.GENESIS}"  # another writer, which cannot be
        return body(seq, prev), b"s" * 64

    with pytest.raises(worker.ChainError, match="moved"):
        outbox.append(moving)
    store.data[worker.HEAD] = f"1 {receipt.digest(body(1, receipt.GENESIS))}"
    with pytest.raises(worker.ChainError, match="queue message"):
        outbox.append(lambda seq, prev: (body(seq, prev, "x" * worker.MAX_RECEIPT), b"s" * 64))
    assert len(outbox.undelivered(10)) == 1


# --- the queue's consumer ----------------------------------------------------------------------


def test_a_batch_is_acknowledged_only_when_the_control_plane_answered_for_every_receipt(
        ) -> None:
    results = json.dumps({"results": [{"id": "7-1", "status": "booked"},
                                      {"id": "7-2", "status": "duplicate"}]}).encode()
    assert worker.acknowledged(200, results, 2)
    assert not worker.acknowledged(200, results, 3)
    assert not worker.acknowledged(503, results, 2)
    assert not worker.acknowledged(401, b'{"error": {}}', 2)
    assert not worker.acknowledged(200, b"<html>", 2)
    assert not worker.acknowledged(0, b"", 2)  # unreachable
    messages = [{"body": "{}", "signature": "00" * 64}]
    assert json.loads(worker.upload_body(messages)) == {"receipts": messages}


def test_retries_back_off_to_an_hour() -> None:
    delays = [worker.retry_delay(n) for n in (0, 1, 2, 3, 9, 100)]
    assert delays == [10, 10, 20, 40, 2560, worker.MAX_RETRY_DELAY]


def test_the_chain_and_a_self_hosted_outbox_write_the_same_receipts(
        bundle: bytes, control_key: SigningKey, tmp_path: Path) -> None:
    """Same core, same requests, same key and clock: the Durable Object's chain and the
    self-hosted PoP's SQLite outbox hold the same bytes."""
    from edge_worker.host.outbox import Outbox

    built = signed(bundle, control_key)
    live = worker.load_release(built, lambda: wasmtime_runner(built))
    key = SigningKey(hashlib.sha256(b"pop").digest())
    sqlite = Outbox(tmp_path / "outbox.db")
    try:
        apps = [edge_app(built, live, worker.ChainOutbox(MemoryStore()), key),
                edge_app(built, live, sqlite, key)]
        for body in (CART, {**CART, "coupons": []}):
            answers = [app.handle(HttpRequest("POST", "/v1/checkout",
                                              body=json.dumps(body).encode())) for app in apps]
            assert answers[0] == answers[1]
        refund = {"receipt": "7-1", "lines": [1]}
        answers = [app.handle(HttpRequest("POST", "/v1/refunds",
                                          body=json.dumps(refund).encode())) for app in apps]
        assert answers[0] == answers[1] and answers[0].status == 201
    finally:
        sqlite.close()
