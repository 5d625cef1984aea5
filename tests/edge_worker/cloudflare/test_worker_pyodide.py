"""The built Worker runs in real Pyodide (Node) through `Default.fetch`, `ReceiptChain` and
`Default.queue`, and answers byte for byte as the same core does on CPython with wasmtime and
PyNaCl; its receipts, signed by WebCrypto, are booked by the control plane, a replayed batch
books nothing twice, and a queue or control plane that is down loses nothing (issue 7). With
the control plane's redemption snapshot, which the Worker fetches, checks by WebCrypto and
holds per isolate, it reports generated and spent codes as the self-hosted core does with the
same snapshot, and a slow or absent control plane does not stall it.

One Node process runs each test's steps (start-up costs seconds): worker_driver.py drives the
built directory with stand-ins for what workerd provides, and the control plane listens on a
local port for the queue consumer's POSTs and the Worker's snapshot GETs.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import VerifyKey
from sqlalchemy import func, select
from werkzeug.serving import make_server

from control_plane.storage.models import Journal, Receipt
from edge_worker.cloudflare import worker
from edge_worker.cloudflare.build import build_worker
from edge_worker.core.pop import HttpRequest, Live, PopApp
from edge_worker.core.redemptions import Redemptions
from edge_worker.engines.wasmtime_engine import WasmtimeEngine
from poprules import receipt
from poprules.bundle import code_hash, decode
from tests.control_plane.conftest import Plane
from tests.control_plane.test_versions import PROGRAM, draft, upload
from tests.edge_worker.cloudflare.conftest import MemoryStore, Shop
from tests.edge_worker.cloudflare.test_worker import Fixed
from tests.edge_worker.pyodide.harness import NODE, ROOT, RUNNER, toolchain_problem

DRIVER = Path(__file__).with_name("worker_driver.py")
CART = {"lines": [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 1}],
        "coupons": ["summer-24"], "fulfillment": "pickup"}
DOWN = "http://127.0.0.1:9"  # the discard port: nothing answers there


@pytest.fixture
def listening(shop: Shop) -> Iterator[str]:
    """The control plane on a local port, for the consumer's real HTTP POSTs."""
    server = make_server("127.0.0.1", 0, shop.plane.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def run_worker(out: Path, work: Path, steps: dict[str, Any]) -> dict[str, Any]:
    """Run the driver on the built directory; JavaScript Promise Integration (run_sync) is
    behind a flag in Node 20 and 22, as it is not in workerd."""
    problem = toolchain_problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    (work / "steps.json").write_text(json.dumps(steps))
    command = [str(NODE), "--experimental-wasm-stack-switching", str(RUNNER), "--no-wheels",
               "--mount", f"{out}:/worker", "--mount", f"{work}:/work", str(DRIVER), "/worker",
               "/work"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, f"{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    result: dict[str, Any] = json.loads((work / "results.json").read_text())
    return result


def request(method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
    text = None if body is None else body if isinstance(body, str) else json.dumps(body)
    return {"fetch": {"method": method, "path": path, "headers": headers, "body": text}}


def reference(shop: Shop, built: worker.Built, now: int) -> tuple[PopApp, PopApp]:
    """The same core on CPython: wasmtime runs the module, PyNaCl signs and checks tokens
    (the core's defaults); an edge app and a chain app, as the Worker has."""
    engine = WasmtimeEngine(use_cache=False)
    live = worker.load_release(built, lambda: engine.load(decode(built.bundle).module))

    def make(outbox: Any) -> PopApp:
        return PopApp(merchant_id=built.merchant_id, pop_id=built.pop_id,
                      pop_name=built.pop_name, signer=lambda m: shop.key.sign(m).signature,
                      clock=lambda: now, releases=Fixed(live), outbox=outbox,
                      claim_page=f"{DOWN}/claim")

    return make(worker.NoReceipts()), make(worker.ChainOutbox(MemoryStore()))


def booked(plane: Plane) -> tuple[dict[str, str], int]:
    with plane.state.db.session() as session:
        statuses = {r.receipt_id: r.status for r in session.scalars(select(Receipt))}
        journals = session.scalar(select(func.count()).select_from(Journal)) or 0
    return statuses, journals


def test_the_built_worker_serves_signs_chains_and_delivers_under_pyodide(
        shop: Shop, built: tuple[Path, worker.Built], listening: str, tmp_path: Path) -> None:
    out, data = built
    now = int(time.time())  # customer tokens expire from the control plane's now
    token = shop.customer_token()
    payload, key_id, signature = token.split(".")
    forged = ".".join([payload, key_id, signature[:10] + ("A" if signature[10] != "A" else "B")
                       + signature[11:]])
    pop = data.pop_id
    steps: list[dict[str, Any]] = [
        request("GET", "/healthz"),                                                # 0
        request("GET", "/v1/release"),                                             # 1
        request("POST", "/v1/quote", CART),                                        # 2
        request("POST", "/v1/quote", CART, **{"X-Poprules-Customer": token}),      # 3
        request("POST", "/v1/quote", CART, **{"X-Poprules-Customer": forged}),     # 4
        request("POST", "/v1/quote", {"lines": [{"sku": "NOPE", "qty": 1}]}),      # 5
        request("POST", "/v1/coupons/validate", {"code": "summer-24", "lines": CART["lines"]}),
        request("POST", "/v1/quote", "not json"),                                  # 7
        request("GET", "/v1/quote"),                                               # 8
        request("GET", "/nowhere"),                                                # 9
        request("OPTIONS", "/v1/checkout"),                                        # 10
        request("GET", "/sdk/poprules.js"),                                        # 11
        request("HEAD", "/healthz"),                                               # 12
        {"queue": "fail"},                                                         # 13
        request("POST", "/v1/checkout", CART, **{"X-Poprules-Customer": token}),   # 14
        {"queue": "ok"},                                                           # 15
        {"alarm": True},                                                           # 16
        request("POST", "/v1/checkout", {**CART, "claim": False}),                 # 17
        request("POST", "/v1/refunds", {"receipt": f"{pop}-2", "lines": [0]}),     # 18
        request("POST", "/v1/refunds", {"receipt": f"{pop}-2", "lines": [0]}),     # 19
        {"consume": [0, 1, 2], "control_plane": DOWN, "attempts": 1},              # 20
        {"consume": [0, 1, 2], "control_plane": listening, "attempts": 2},         # 21
        {"consume": [1, 0, 2], "control_plane": listening, "attempts": 1},         # 22
        request("GET", "/v1/storefront"),                                          # 23
        request("GET", "/demo"),                                                   # 24
        request("POST", "/v1/claims/qr", {"claim_token": f"{pop}-3.{'A' * 22}"}),  # 25
    ]
    env = {"POP_PRIVATE_KEY": shop.seed_hex, "POP_SECRET": shop.pop_secret,
           "CONTROL_PLANE": DOWN}
    ran = run_worker(out, tmp_path, {"env": env, "now_ms": now * 1000 + 250, "steps": steps})
    results = ran["results"]

    # Byte for byte what the same core answers on CPython, in the same order.
    edge, chain = reference(shop, data, now)
    for index, step in enumerate(steps):
        if "fetch" not in step:
            continue
        sent = step["fetch"]
        got = results[index]
        body = base64.b64decode(got["body"])
        where = worker.route(sent["path"], sent["method"])
        app = chain if where == worker.CHAIN else edge
        expected = app.handle(HttpRequest(
            sent["method"], sent["path"], "",
            {k.lower(): v for k, v in sent["headers"].items()},
            (sent["body"] or "").encode()))
        assert got["status"] == expected.status, (index, body)
        assert body == (b"" if sent["method"] == "HEAD" else expected.body), index
        assert got["headers"]["access-control-allow-origin"] == "*", index
    def answer(index: int) -> Any:
        return json.loads(base64.b64decode(results[index]["body"]))

    assert answer(3)["quote_id"] != answer(2)["quote_id"]  # the token's shopper counts
    assert answer(4)["error"]["message"].startswith("bad_signature")
    assert [results[i]["status"] for i in (14, 17, 18, 19)] == [201, 201, 201, 422]

    # The queue refused the first receipt: it was stored, an alarm set, and delivered later.
    assert ran["alarm"] == now * 1000 + 250 + 30_000
    queued = ran["queued"]
    assert [json.loads(m["body"])["seq"] for m in queued] == [1, 2, 3]
    assert json.loads(queued[0]["body"])["customer"] is not None  # from the verified token
    verify = VerifyKey(shop.key.verify_key.encode())
    prev = receipt.GENESIS
    for message in queued:
        body = message["body"].encode()
        verify.verify(receipt.statement(body), bytes.fromhex(message["signature"]))
        assert json.loads(body)["prev"] == prev
        prev = receipt.digest(body)
    stored = ran["stored"]
    assert stored["head"] == f"3 {prev}"
    assert not [key for key in stored if key.startswith(worker.UNSENT)]

    # Control plane down: every message goes again later, none is acknowledged.
    assert results[20]["log"] == [["retry", i, {"delaySeconds": 10}] for i in range(3)]
    # Up: booked, and the batch acknowledged; replayed in another order: nothing twice.
    assert results[21]["log"] == [["ackAll"]]
    assert results[22]["log"] == [["ackAll"]]
    statuses, journals = booked(shop.plane)
    assert statuses == {f"{pop}-1": "booked", f"{pop}-2": "booked", f"{pop}-3": "booked"}
    replayed = shop.plane.call("POST", "/v1/receipts", shop.pop_secret, json={
        "receipts": [queued[0]]})
    assert replayed.get_json()["results"][0]["status"] == "duplicate"
    assert booked(shop.plane) == (statuses, journals)
    print(f"import (release check) {ran['import_ms']:.0f} ms; first quote "
          f"{results[2]['elapsed_ms']:.1f} ms, next {results[3]['elapsed_ms']:.1f} ms")


# --- the redemption snapshot at the edge -------------------------------------------------------

WELCOME_SET = """\
  - id: welcome
    generate: {count: 3, prefix: "W-", length: 6}
    max_redemptions: 1
"""
WELCOME_RULE = """\
  - id: welcome-off
    title: 5% off with a welcome code
    coupon: welcome
    discount: 5%

"""
LINES = [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 1}]


class Slow(BaseHTTPRequestHandler):
    """A control plane that takes far longer to answer than a quote may wait."""

    def do_GET(self) -> None:
        time.sleep(10)
        self.send_error(503)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def redemptions_of(shop: Shop) -> bytes:
    """The snapshot's bytes as the control plane serves them to the Worker's PoP."""
    got = shop.plane.call("GET", f"/v1/pops/{shop.pop_id}/redemptions", shop.pop_secret)
    assert got.status_code == 200, got.get_json()
    return bytes(got.data)


def test_the_worker_quotes_with_the_control_planes_redemption_snapshot(
        shop: Shop, listening: str, slow: str, tmp_path: Path) -> None:
    plane, merchant, token = shop.plane, shop.account.merchant_id, shop.account.token
    # Version 2 has a `generate` set; its release goes to every PoP, then its codes are issued.
    program = PROGRAM.replace("\nrules:\n", f"{WELCOME_SET}\nrules:\n{WELCOME_RULE}", 1)
    assert upload(plane, merchant, token, draft(program=program)).status_code == 201
    published = plane.call("POST", f"/v1/merchants/{merchant}/releases", token,
                           json={"version": 2, "group": "*"})
    assert published.status_code == 201, published.get_json()
    issued = plane.call("POST", f"/v1/merchants/{merchant}/versions/2/coupon-sets/welcome/codes",
                        token)
    assert issued.status_code == 201, issued.get_json()
    first, second = issued.get_json()["codes"][:2]
    before = redemptions_of(shop)
    files = tmp_path / "release-2"
    files.mkdir()
    (files / "release.json").write_text(json.dumps(published.get_json()))
    (files / "release.bundle").write_bytes(
        plane.call("GET", f"/v1/merchants/{merchant}/releases/2/bundle", token).data)
    out = tmp_path / "worker-2"
    data = build_worker(bundle=files / "release.bundle", signature=files / "release.json",
                        state=shop.state, out=out)

    def quote(*codes: str) -> dict[str, Any]:
        return request("POST", "/v1/quote", {"lines": LINES, "coupons": list(codes)})

    ttl = worker.SNAPSHOT_TTL_MS
    steps: list[dict[str, Any]] = [
        request("GET", "/v1/release"),                                             # 0
        quote(first.lower(), second, "NOPE-1"),                                    # 1
        request("POST", "/v1/coupons/validate", {"code": first, "lines": LINES}),  # 2
        request("POST", "/v1/checkout", {"lines": LINES, "coupons": [first]}),     # 3
        {"consume": [0], "control_plane": listening, "attempts": 1},               # 4
        quote(first, second),                                                      # 5
        {"advance_ms": ttl},                                                       # 6
        request("POST", "/v1/checkout", {"lines": LINES, "coupons": [second]}),    # 7
        quote(first, second),                                                      # 8
        request("GET", "/v1/release"),                                             # 9
        {"consume": [1], "control_plane": listening, "attempts": 1},               # 10
        {"set_env": {"CONTROL_PLANE": slow, "SNAPSHOT_WAIT_MS": "1000"}},          # 11
        {"advance_ms": ttl},                                                       # 12
        quote(first),                                                              # 13
        quote(second),                                                             # 14
        {"set_env": {"CONTROL_PLANE": DOWN}},                                      # 15
        {"advance_ms": ttl},                                                       # 16
        quote(first),                                                              # 17
    ]
    now = int(time.time())
    # A generous wait until the slow step: on a loaded CI machine a fetch from the test's own
    # control plane can take over the default second, and the snapshot would be missed.
    env = {"POP_PRIVATE_KEY": shop.seed_hex, "POP_SECRET": shop.pop_secret,
           "CONTROL_PLANE": listening, "SNAPSHOT_WAIT_MS": "20000"}
    ran = run_worker(out, tmp_path, {"env": env, "now_ms": now * 1000, "steps": steps})
    results = ran["results"]
    after = redemptions_of(shop)  # the redemption booked at step 4 spent the welcome set
    versions = [json.loads(body)["version"] for body in (before, after)]
    assert versions[0] < versions[1]

    # Byte for byte the self-hosted core's answers with the snapshot each step had: the
    # first one until the TTL was over, then the one after the booking, kept through the
    # slow and the absent control plane.
    engine = WasmtimeEngine(use_cache=False)
    live = worker.load_release(data, lambda: engine.load(decode(data.bundle).module))
    held = {version: Live(live.release, live.number, Redemptions.from_snapshot(
        body, release=live.release, merchant=merchant)) for version, body in
        zip(versions, (before, after), strict=True)}
    source, clock = Fixed(held[versions[0]]), [now]

    def make(outbox: Any) -> PopApp:
        return PopApp(merchant_id=data.merchant_id, pop_id=data.pop_id,
                      pop_name=data.pop_name, signer=lambda m: shop.key.sign(m).signature,
                      clock=lambda: clock[0], releases=source, outbox=outbox)

    edge, chain = make(worker.NoReceipts()), make(worker.ChainOutbox(MemoryStore()))
    answers: dict[int, Any] = {}
    for index, step in enumerate(steps):
        if "fetch" not in step:
            continue
        sent, got = step["fetch"], results[index]
        source.live = held[versions[0] if index < 7 else versions[1]]
        clock[0] = got["now_ms"] // 1000
        app = chain if worker.route(sent["path"], sent["method"]) == worker.CHAIN else edge
        expected = app.handle(HttpRequest(sent["method"], sent["path"], "", {},
                                          (sent["body"] or "").encode()))
        body = base64.b64decode(got["body"])
        assert (got["status"], body) == (expected.status, expected.body), (index, body)
        answers[index] = json.loads(body)

    def statuses(index: int) -> list[str]:
        return [c["status"] for c in answers[index]["coupons"]]

    assert [answers[i]["snapshot"] for i in (0, 9)] == versions
    assert statuses(1) == ["valid", "valid", "unknown"]  # issued codes: not `unknown`
    assert answers[2]["status"] == "valid" and answers[2]["rule"] == "welcome-off"
    assert statuses(5) == ["valid", "valid"]  # within the TTL: the snapshot it holds
    # After the TTL: the snapshot with the set spent (the receipt chain's Durable Object,
    # asked first, fetched it), kept while the control plane is slow (13, 14) and away (17).
    assert [statuses(i) for i in (8, 13, 14, 17)] == \
        [["spent", "spent"], ["spent"], ["spent"], ["spent"]]
    # The same as Release.quote with Redemptions.from_snapshot on CPython.
    for index, version in ((1, versions[0]), (8, versions[1])):
        request_fields = {**json.loads(steps[index]["fetch"]["body"]), "pop": data.pop_name,
                          "at": answers[index]["at"]}
        direct = live.release.quote(live.release.read_request(request_fields),
                                    redemptions=held[version].redemptions)
        assert {k: answers[index][k] for k in direct if k != "release"} == \
            {k: v for k, v in direct.items() if k != "release"}

    # The receipts carry the snapshot and the spent codes; the control plane booked both.
    sales = [answers[i]["receipt"]["body"] for i in (3, 7)]
    key = live.release.bundle.coupons["key"]
    assert [(s["snapshot"], s["spent"]) for s in sales] == \
        [(versions[0], []), (versions[1], [code_hash(key, second)])]
    assert [results[i]["log"] for i in (4, 10)] == [[["ackAll"]], [["ackAll"]]]
    statuses_booked, _ = booked(plane)
    assert statuses_booked == {f"{data.pop_id}-1": "booked", f"{data.pop_id}-2": "booked"}

    # A slow control plane costs one request the wait (the fetch is aborted), once per TTL.
    assert 900 <= results[13]["elapsed_ms"] < 4000, results[13]["elapsed_ms"]
    assert results[14]["elapsed_ms"] < 500 and results[17]["elapsed_ms"] < 500
    assert ran["snapshot_problem"] is not None and "GET" in ran["snapshot_problem"]
    print(f"quote with a snapshot fetch {results[1]['elapsed_ms']:.1f} ms (first request "
          f"{results[0]['elapsed_ms']:.1f} ms), cached {results[5]['elapsed_ms']:.1f} ms, "
          f"refetched (checkout) {results[7]['elapsed_ms']:.1f} ms, slow control plane "
          f"{results[13]['elapsed_ms']:.0f} ms")
